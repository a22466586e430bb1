"""The training loop: setup from a :class:`RunConfig`, steps, checkpoints, resume, evaluation.

Run it with ``paraspeechclap train --config CONFIG.yaml`` (one process) or
``torchrun --nproc_per_node=N -m paraspeechclap train --config CONFIG.yaml`` (DDP: NCCL on GPUs,
gloo on CPUs; multi-node through torchrun's own ``--nnodes/--node_rank/--rdzv_*`` arguments).

Exact resumption. A checkpoint holds the model's trainable/stored weights, the optimiser and
scheduler, the step, the epoch and the number of batches done in it, every rank's sampler position
and RNG states (Python, NumPy, torch, CUDA), the distinct bad items seen, and the best dev metric.
Everything random in the data pipeline is seeded by ``(seed + rank, epoch, position)``, and the
DataLoader gets its own generator, so a run killed at any point and resumed with ``--resume auto``
reaches the same weights as an uninterrupted run (same world size, same config).

Output folder (``train.output_dir``)::

    config.yaml        the resolved config (also inside every checkpoint)
    metrics.jsonl      train/... and val/... metrics (TensorBoard under tensorboard/ if enabled)
    checkpoints/       step_<k>.pt + .json sidecars, written atomically by the main rank
    best/              save_pretrained of the best dev model (+ metrics.json)
    final/             save_pretrained of the last model: paraspeechclap.load_model("<out>/final")
    summary.json       steps, time, last metrics
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import distributed
from ..atomic import atomic_write_json, atomic_write_text
from ..data.attributes import get_attribute_set
from ..distributed import DistributedInfo
from ..errors import CheckpointError, ConfigError, InputError
from ..losses import ContrastiveLoss, MultiTaskLoss, clamp_logit_scale_, draw_tag_prompts
from ..losses.attributes import AttributeClassificationLoss, AttributeTargets, attribute_targets
from ..losses.centred import centre_linear, centre_rows
from ..losses.group_dro import GroupDRO, group_row_weights
from ..offset import carries
from . import checkpoint as ckpt
from .augment import make_pipeline
from .centred_fit import SpeakerClips, speaker_clips
from .config import LossConfig, RunConfig, config_to_yaml
from .data import (
    DevSet,
    Source,
    TrainDataset,
    build_dev_set,
    build_plan,
    build_sampler,
    cached_clips,
    clip_key,
    collate_train,
    load_source,
    tag_vocabulary,
)
from .domain_shift import DomainShift, domain_groups, domain_means, row_domain
from .evaluate import evaluate_dev
from .features import CacheRequest, FeatureTable, build_feature_table, default_cache_root
from .logging import MetricsLogger, Progress
from .modules import FrozenTextCache, TrainingModule, build_model, set_train_mode
from .offset_fit import fit_audio_offset, follow_batches
from .optim import create_optimizer, create_scheduler

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _paraphrase_prompts(cfg: LossConfig, vocab: list[str]) -> dict[str, list[str]]:
    """Tag -> prompt sentences for the classification loss (``loss.tag_prompts``)."""
    import json

    mode = cfg.tag_prompts
    if mode == "none":
        return {}
    if mode == "builtin":
        from ..data.vocabulary import tag_paraphrases

        return {t: [cfg.tag_prompt_template.format(p) for p in tag_paraphrases(t)] for t in vocab}
    try:
        data = json.loads(Path(mode).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"loss.tag_prompts: cannot read {mode} ({exc})") from None
    return {str(k).strip().lower(): [str(s) for s in v] for k, v in data.items()}


@dataclass
class RunState:
    """Counters that checkpoints save (besides weights, optimiser and RNG)."""

    step: int = 0
    epoch: int = 1
    batches_done: int = 0
    best_value: float | None = None
    best_step: int | None = None
    bad: dict[str, str] = field(default_factory=dict)
    last_eval_step: int = -1


class Trainer:
    """Builds everything from the config and trains (see module docstring).

    Args:
        cfg: the validated run config.
        info: this process's placement (from :func:`paraspeechclap.distributed.init_distributed`).
    """

    def __init__(self, cfg: RunConfig, info: DistributedInfo) -> None:
        self.cfg, self.info = cfg, info
        self.out = Path(cfg.train.output_dir).expanduser()
        self.ckpt_dir = self.out / "checkpoints"
        self.state = RunState()
        if cfg.train.num_threads:
            torch.set_num_threads(cfg.train.num_threads)
        if cfg.train.deterministic and info.device.type == "cuda":
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        seed_everything(cfg.train.seed + info.rank)
        self.model = build_model(cfg.model, info.device, cached_audio=cfg.features.cache,
                                 grad_checkpointing=cfg.train.grad_checkpointing)
        self._build_data()
        self._build_objective()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if not self.params:
            raise ConfigError("nothing to train: every parameter is frozen")
        self.optimizer = create_optimizer(self.params, cfg.optim)
        self.scheduler = create_scheduler(self.optimizer, cfg.optim, self.total_steps)
        cache = FrozenTextCache(self.model.text_branch) if self._text_cacheable() else None
        self.module: torch.nn.Module = TrainingModule(self.model, cfg.features.cache, cache)
        if info.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [info.device] if info.device.type == "cuda" else None
            self.module = DistributedDataParallel(self.module, device_ids=ids,
                                                  find_unused_parameters=cfg.train.find_unused_parameters)

    # -- setup -----------------------------------------------------------------------------------
    def _text_cacheable(self) -> bool:
        t = self.cfg.model.text_trainable
        return self.cfg.features.text_cache and t is not None and len(t) == 0

    def _build_data(self) -> None:
        cfg, info = self.cfg, self.info
        if not cfg.data.train:
            raise ConfigError("no training data: set data.train (a list of sources) or data.train_manifest")
        self.sources: list[Source] = [load_source(s) for s in cfg.data.train]
        plan = build_plan([len(s.manifest) for s in self.sources], [s.weight for s in self.sources],
                          cfg.data.mixing, cfg.data.epoch_size, cfg.train.seed)  # fmt: skip
        encoder = self.model.audio_branch
        self.pipeline = make_pipeline(cfg.audio, cfg.augment, encoder)
        features = self._train_features(plan) if cfg.features.cache else None
        shift = self._domain_shift(plan, features) if (features is not None and cfg.features.domain_shift) else None
        self.dataset = TrainDataset(self.sources, plan, encoder, self.pipeline, cfg.augment, seed=cfg.train.seed,
                                    rank=info.rank, tag_field=cfg.loss.tag_field, features=features,
                                    shift=shift)  # fmt: skip
        self.sampler = build_sampler(cfg.data, self.dataset, info.rank, info.world_size, cfg.train.batch_size,
                                     cfg.train.seed)  # fmt: skip
        self.loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=cfg.train.batch_size, sampler=self.sampler, collate_fn=collate_train,
            num_workers=cfg.data.num_workers, drop_last=False, pin_memory=info.device.type == "cuda",
            # Own generator: creating an iterator must not consume the global torch RNG (dropout),
            # or a resumed run would draw different dropout masks than an uninterrupted one.
            generator=torch.Generator().manual_seed(cfg.train.seed + info.rank),
        )
        self.steps_per_epoch = -(-len(self.sampler) // cfg.train.batch_size)
        limits = [cfg.train.max_steps, cfg.train.epochs and cfg.train.epochs * self.steps_per_epoch]
        self.total_steps = min(x for x in limits if x)
        self.dev: DevSet | None = build_dev_set([load_source(s) for s in cfg.data.dev]) if cfg.data.dev else None
        self.dev_features = self._dev_features() if (self.dev is not None and cfg.features.cache) else None

    def _cache_root(self) -> Path:
        configured = self.cfg.features.cache_dir
        return Path(configured).expanduser() if configured else default_cache_root() / "features"

    def _train_features(self, plan: list[tuple[int, int]]) -> FeatureTable:
        reqs, seen = [], set()
        for s, i in plan:
            key = clip_key(self.sources, s, i)
            if key not in seen:
                seen.add(key)
                reqs.append(CacheRequest(key, str(self.sources[s].manifest.audio_path(i))))
        f = self.cfg.features
        seed = self.cfg.train.seed if f.seed is None else f.seed
        table = build_feature_table(reqs, self.model.audio_branch, self._cache_root(), self.pipeline,
                                    seed=seed, variants=f.variants, batch_size=f.batch_size,
                                    progress=self.cfg.train.progress)  # fmt: skip
        self.state.bad.update(table.bad)
        self._check_bad()
        return table

    def _domain_shift(self, plan: list[tuple[int, int]], table: FeatureTable) -> DomainShift:
        """The corpus-offset augmentation over this run's cached training clips (each distinct clip once)."""
        cfg = self.cfg.features.domain_shift
        assert cfg is not None
        clips, groups = {}, {}
        for key, row, variants in cached_clips(self.sources, plan, table):
            domain = row_domain(row, cfg.domain_field, cfg.require)
            clips[key] = (domain, variants)
            groups[key] = (domain, "/".join(str(row.get(f)) for f in cfg.match))
        width = self.model.audio_branch.state_width
        shift = DomainShift(domain_means(clips.values(), width, cfg.min_clips, cfg.skip), cfg.prob,
                            (cfg.scale[0], cfg.scale[1]), width, domain_groups(groups.values()), cfg.domain_field,
                            cfg.require)  # fmt: skip
        if not any(shift.targets.values()):
            alike = f" sharing {', '.join(cfg.match)}" if cfg.match else ""
            raise ConfigError(f"features.domain_shift: fewer than two domains of {cfg.domain_field!r} with >= "
                              f"{cfg.min_clips} training clips{alike} (found {shift.domains})")
        logger.info("domain shift over %d domains: %s", len(shift.domains), ", ".join(shift.domains))
        return shift

    def _dev_features(self) -> FeatureTable:
        assert self.dev is not None
        reqs = [CacheRequest(k, p) for k, p in zip(self.dev.keys, self.dev.paths)]
        return build_feature_table(reqs, self.model.audio_branch, self._cache_root(), None, seed=self.cfg.train.seed,
                                   variants=1, batch_size=self.cfg.features.batch_size,
                                   progress=self.cfg.train.progress)

    def _build_objective(self) -> None:
        cfg, info = self.cfg.loss, self.info
        self.vocab: list[str] = []
        if cfg.name == "multitask":
            given = [t.strip().lower() for t in cfg.tag_vocab or []]
            self.vocab = given or tag_vocabulary(self.sources, cfg.tag_field)
            if not self.vocab:
                raise ConfigError(f"loss.name=multitask but the training rows have no {cfg.tag_field!r} tags")
            self.prompts = _paraphrase_prompts(cfg, self.vocab)
            self.loss_fn: torch.nn.Module = MultiTaskLoss(self.vocab, info.rank, info.world_size, cfg.gather_with_grad,
                                                          cfg.local_loss, cfg.classification_weight)  # fmt: skip
        else:
            self.loss_fn = ContrastiveLoss(info.rank, info.world_size, cfg.gather_with_grad, cfg.local_loss)
        self.attr_sets = [get_attribute_set(name) for name in cfg.attribute_sets]
        extra = cfg.attribute_prompts
        self.attr_prompts = {a.name: (a.widened(*extra.for_set(a.name)) if extra else a).prompts(ensemble=True)
                             for a in self.attr_sets}  # fmt: skip
        self.attr_loss = AttributeClassificationLoss(cfg.attribute_weight, cfg.attribute_reduction)
        self.group_dro = self._group_dro() if cfg.group_dro is not None else None
        self.centred: SpeakerClips | None = None
        if cfg.centred is not None:
            assert self.dataset.features is not None  # the config requires features.cache
            self.centred = speaker_clips(self.sources, self.dataset.plan, self.dataset.features,
                                         self.model.config.embed_dim, cfg.centred)
            self.centred_sets = [get_attribute_set(name) for name in cfg.centred.sets]
            self.centred_loss = AttributeClassificationLoss(cfg.centred.weight, cfg.attribute_reduction)
            logger.info("speaker-centred loss over %d speakers", len(self.centred.means.groups))

    def _group_dro(self) -> GroupDRO:
        """The worst-corpus weights over the training rows' groups with enough rows (loss.group_dro)."""
        cfg = self.cfg.loss.group_dro
        assert cfg is not None
        # resolved once: _row_group runs on every row of every batch
        self._group_set = get_attribute_set(cfg.group_set) if cfg.group_set else None
        counts: Counter[str] = Counter()
        for src in self.sources:
            counts.update(g for g in map(self._row_group, src.manifest) if g)
        skip = set(cfg.skip)
        groups = sorted(g for g, n in counts.items() if n >= cfg.min_clips and g not in skip)
        if not groups:
            by = f"set {cfg.group_set!r}" if cfg.group_set else repr(cfg.group_field)
            raise ConfigError(f"loss.group_dro: no group of {by} has >= {cfg.min_clips} training rows "
                              f"carrying {cfg.require} (found {dict(counts)})")
        logger.info("group DRO over %d groups: %s", len(groups), ", ".join(groups))
        return GroupDRO(groups, cfg.eta)

    def _row_group(self, row: dict[str, Any]) -> str | None:
        """A row's group under loss.group_dro: its ``group_set`` class (the worst class) or its ``group_field``
        value (the worst corpus); ``None`` without it or without a ``require``d field."""
        cfg = self.cfg.loss.group_dro
        assert cfg is not None
        if self._group_set is None:
            return row_domain(row, cfg.group_field, cfg.require)
        gold = self._group_set.gold(row) if carries(row, cfg.require) else None
        return None if gold is None else str(gold)

    # -- one step --------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.cfg.train.precision == "bf16":
            return torch.autocast(self.info.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def tag_prompts(self, step: int) -> list[str] | None:
        """This step's prompt per vocabulary tag (multitask loss); the same on every rank."""
        if not self.vocab:
            return None
        rng = random.Random(f"{self.cfg.train.seed}/tag-prompts/{step}")
        return draw_tag_prompts(self.vocab, self.prompts, rng, self.cfg.loss.default_prompt_template, broadcast=False)

    def attribute_prompts(self, step: int) -> list[str]:
        """This step's prompt per candidate of each attribute set (drawn from its ensemble), in set
        and candidate order; the same on every rank."""
        rng = random.Random(f"{self.cfg.train.seed}/attribute-prompts/{step}")
        return [rng.choice(self.attr_prompts[a.name][c]) for a in self.attr_sets for c in a.candidates]

    def compute_losses(self, batch: dict[str, Any], step: int) -> dict[str, torch.Tensor]:
        """Forward and loss terms of one batch (keys ending in ``_loss`` sum to the total)."""
        audio = {k: v.to(self.info.device, non_blocking=True) for k, v in batch["audio"].items()}
        tag_prompts = self.tag_prompts(step) or []
        prompts = tag_prompts + self.attribute_prompts(step)
        with self._autocast():
            out = self.module(audio, batch["captions"], prompts or None)
        a, t, scale = out["audio"].float(), out["text"].float(), out["logit_scale"].float()
        if self.cfg.audio_offset is not None and self.cfg.audio_offset.train:
            a = follow_batches(self.model, a, batch["rows"], self.cfg.audio_offset)
        prompt_emb = out["tags"].float() if prompts else None
        if self.vocab:
            losses = self.loss_fn(a, t, scale, prompt_emb[: len(tag_prompts)], batch["tags"], output_dict=True)
        else:
            losses = self.loss_fn(a, t, scale, output_dict=True)
        if self.attr_sets:
            class_emb = self._class_embeddings(prompt_emb[len(tag_prompts):])
            losses["attribute_loss"] = self._attribute_loss(a, class_emb, batch["rows"], scale)
            if self.centred is not None:
                losses["centred_loss"] = self._centred_loss(a, out["audio_linear1"], class_emb, batch["rows"], scale)
        return losses

    def _class_embeddings(self, prompt_emb: torch.Tensor) -> dict[str, torch.Tensor]:
        """Set name -> ``(C, D)``: this step's prompt embeddings split by attribute set."""
        class_emb, start = {}, 0
        for aset in self.attr_sets:
            class_emb[aset.name] = prompt_emb[start:start + len(aset.candidates)]
            start += len(aset.candidates)
        return class_emb

    def _centred_loss(self, audio: torch.Tensor, linear1: torch.Tensor, class_emb: dict[str, torch.Tensor],
                      rows: list[dict[str, Any]], scale: torch.Tensor) -> torch.Tensor:
        """The cross-entropy of ``loss.centred.sets`` on the rows of centred speakers, each moved off its
        speaker's current mean: the normalised embedding ``audio``, or (``at: linear1``) the projection's
        first linear output ``linear1`` ``(B, D)``, which the rest of the projection then finishes."""
        cfg, clips = self.cfg.loss.centred, self.centred
        assert cfg is not None and clips is not None
        ids = clips.means.ids([row_domain(r, cfg.speaker_field, cfg.require) for r in rows]).to(audio.device)
        if cfg.at == "linear1":
            moved = centre_linear(linear1.float(), ids, clips.means.means)
            with self._autocast():
                centred = torch.nn.functional.normalize(self.model.audio_projection.finish(moved).float(), dim=-1)
        else:
            centred = centre_rows(torch.nn.functional.normalize(audio, dim=-1), ids, clips.means.means)
        targets = [AttributeTargets(t.name, t.candidates, torch.where(ids >= 0, t.target, -1))
                   for t in attribute_targets(rows, self.centred_sets)]
        return self.centred_loss(centred, class_emb, [t for t in targets if bool((t.target >= 0).any())], scale)

    def _attribute_loss(self, audio: torch.Tensor, class_emb: dict[str, torch.Tensor], rows: list[dict[str, Any]],
                        scale: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over each attribute set's candidates for the rows that carry its label; under
        group DRO the grouped rows are weighted by the current group weights, which this batch then updates."""
        targets = attribute_targets(rows, self.attr_sets)
        if self.group_dro is None:
            return self.attr_loss(audio, class_emb, targets, scale)
        cfg, dro = self.cfg.loss.group_dro, self.group_dro
        assert cfg is not None
        ids = dro.ids([self._row_group(r) for r in rows]).to(audio.device)
        parts = self.attr_loss.per_row(audio, class_emb, targets, scale)
        loss = self.attr_loss.reduce(parts, lambda valid: group_row_weights(ids[valid], dro.q), audio)
        if parts:
            dro.update(torch.cat([ids[valid] for valid, _ in parts]), torch.cat([ce for _, ce in parts]))
        return loss

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        """One optimiser step on ``batch``; returns its scalar metrics (``train/...``)."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.centred is not None and (step - 1) % self.cfg.loss.centred.refresh == 0:  # type: ignore[union-attr]
            self.centred.refresh(self.model)  # the speakers' means on the weights of this period's first step
            set_train_mode(self.model)
        losses = self.compute_losses(batch, step)
        total = sum(v for k, v in losses.items() if k.endswith("_loss"))
        total.backward()  # type: ignore[union-attr]
        metrics = {"train/loss": total.item(), **{f"train/{k}": v.item() for k, v in losses.items()}}
        if self.cfg.optim.grad_clip_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.optim.grad_clip_norm)
            metrics["train/grad_norm"] = float(norm)
        self.optimizer.step()
        self.scheduler.step()
        if self.cfg.loss.clamp == "step":
            clamp_logit_scale_(self.model.log_logit_scale, self.cfg.loss.max_logit_scale)
        metrics["train/logit_scale"] = self.model.logit_scale.item()
        metrics["train/lr"] = float(self.optimizer.param_groups[0]["lr"])
        if self.group_dro is not None:
            metrics.update({f"train/group_dro/{g}": w for g, w in self.group_dro.describe().items()})
        return metrics

    # -- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Write a resumable checkpoint (collective: every rank must call it at the same step)."""
        s = self.state
        consumed = min(s.batches_done * self.cfg.train.batch_size, len(self.sampler))
        samplers = distributed.all_gather_object(self.sampler.state_dict(consumed=consumed))  # type: ignore[attr-defined]
        rngs = distributed.all_gather_object(ckpt.capture_rng_state())
        bad = distributed.all_gather_object(dict(s.bad))
        if distributed.is_main():
            state = {
                "format": "paraspeechclap-train", "step": s.step, "epoch": s.epoch, "batches_done": s.batches_done,
                "world_size": self.info.world_size, "model": self.model.stored_state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "samplers": samplers, "rng": rngs, "bad": bad, "best_value": s.best_value, "best_step": s.best_step,
                "last_eval_step": s.last_eval_step, "config": self.cfg.to_dict(),
            }  # fmt: skip
            if self.group_dro is not None:
                state["group_dro"] = self.group_dro.state_dict()
            if self.centred is not None:
                state["centred"] = self.centred.means.state_dict()
            ckpt.save_training_checkpoint(self.ckpt_dir, s.step, state, keep_last=self.cfg.train.keep_checkpoints)
        distributed.barrier()

    def resume(self, path: str | os.PathLike[str]) -> None:
        """Restore everything saved by :meth:`save_checkpoint` (call after construction)."""
        state = ckpt.load_training_checkpoint(path, map_location="cpu")
        if state.get("world_size") != self.info.world_size:
            raise CheckpointError(f"{path}: saved with {state.get('world_size')} processes, resuming with "
                                  f"{self.info.world_size}; resume with the same number of processes")
        changed = _changed_keys(state.get("config") or {}, self.cfg.to_dict())
        if changed:
            logger.warning("%s: the config differs from the checkpoint's (%s); the result will not equal an "
                           "uninterrupted run", path, ", ".join(changed[:5]))
        stored = self.model.stored_state_dict()
        missing = set(stored) - set(state["model"])
        if missing or set(state["model"]) - set(stored):
            raise CheckpointError(f"{path}: model weights do not match this config (e.g. {sorted(missing)[:1]})")
        self.model.load_state_dict(state["model"], strict=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.group_dro is not None and "group_dro" in state:
            self.group_dro.load_state_dict(state["group_dro"])
        if self.centred is not None and "centred" in state:
            self.centred.means.load_state_dict(state["centred"])
        r = self.info.rank
        self.state = RunState(state["step"], state["epoch"], state["batches_done"], state["best_value"],
                              state["best_step"], dict(state["bad"][r]), state["last_eval_step"])  # fmt: skip
        self._sampler_state = state["samplers"][r]
        ckpt.restore_rng_state(state["rng"][r])  # last: nothing after this may draw random numbers

    # -- loop ------------------------------------------------------------------------------------
    def _finished(self) -> bool:
        t, s = self.cfg.train, self.state
        return (t.max_steps is not None and s.step >= t.max_steps) or (t.epochs is not None and s.epoch > t.epochs)

    def _batches(self) -> Iterator[dict[str, Any]]:
        """This epoch's remaining batches (resuming mid-epoch at the saved sampler position)."""
        self.sampler.set_epoch(self.state.epoch)  # type: ignore[attr-defined]
        self.dataset.set_epoch(self.state.epoch)
        if self.state.batches_done:
            self.sampler.load_state_dict(self._sampler_state)  # type: ignore[attr-defined]
        yield from self.loader

    def _check_bad(self) -> None:
        limit = self.cfg.data.max_bad_items
        if len(self.state.bad) > limit:
            reason = next(reversed(self.state.bad.values()))
            raise InputError(f"{len(self.state.bad)} unreadable training items, more than data.max_bad_items={limit}; "
                             f"last: {reason}")

    def fit(self) -> dict[str, Any]:
        """Train until ``max_steps``/``epochs``; returns a summary (also written to ``summary.json``)."""
        self._start_outputs()
        set_train_mode(self.model)
        t0, window = time.perf_counter(), _Window()
        while not self._finished():
            for batch in self._batches():
                self.state.bad.update(dict(batch["bad"]))
                self._check_bad()
                metrics = self.train_step(batch, self.state.step + 1)
                self.state.step += 1
                self.state.batches_done += 1
                self._after_step(metrics, window, len(batch["captions"]))
                if self._finished():
                    break
            else:
                self._end_of_epoch()
        return self._finish(time.perf_counter() - t0)

    def _end_of_epoch(self) -> None:
        if self.cfg.loss.clamp == "epoch":  # official: clamp at each epoch end
            clamp_logit_scale_(self.model.log_logit_scale, self.cfg.loss.max_logit_scale)
        self.state.epoch += 1
        self.state.batches_done = 0

    def _after_step(self, metrics: dict[str, float], window: _Window, batch_size: int) -> None:
        s, t = self.state, self.cfg.train
        window.add(metrics, batch_size * self.info.world_size)
        self.progress.update(metrics["train/loss"], window.rate())
        if s.step % t.log_every == 0:
            logged = distributed.average_metrics(window.means())
            logged["train/samples_per_s"] = window.rate()
            logged["train/bad_items"] = float(len(s.bad))
            logged["train/epoch"] = float(s.epoch)
            self.metrics.log(s.step, logged)
            window.reset()
        if s.step % t.checkpoint_every == 0:
            self.save_checkpoint()
        if self.cfg.eval.every_steps and s.step % self.cfg.eval.every_steps == 0:
            self.run_eval()

    def run_eval(self) -> dict[str, float]:
        """Dev evaluation on the main rank (others wait); keeps ``best/`` up to date."""
        metrics: dict[str, float] = {}
        self._fit_offset()  # every rank: the offset is part of the state each saves or compares
        if self.dev is not None and distributed.is_main():
            metrics = evaluate_dev(self.model, self.dev, self.cfg.eval, self.dev_features)
            set_train_mode(self.model)
            self.metrics.log(self.state.step, metrics)
            value = metrics.get(self.cfg.eval.best_metric)
            if value is not None and (self.state.best_value is None or value > self.state.best_value):
                self.state.best_value, self.state.best_step = value, self.state.step
                save_model_dir(self.model, self.out / "best", {"step": self.state.step, **metrics})
            self.progress.write(_format_eval(self.state.step, metrics))
        self.state.last_eval_step = self.state.step
        distributed.barrier()
        return metrics

    def _fit_offset(self) -> None:
        """Refit the stored audio offset (``audio_offset``) on the current weights, when the run has one."""
        if self.cfg.audio_offset is not None:
            self.offset_info = fit_audio_offset(self.model, self.sources, self.dataset.plan, self.dataset.features,
                                                self.cfg.audio_offset)

    # -- outputs ---------------------------------------------------------------------------------
    def _start_outputs(self) -> None:
        main = distributed.is_main()
        resumed = self.state.step > 0
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.out / "config.yaml", config_to_yaml(self.cfg))
        self.metrics = MetricsLogger(self.out, enabled=main, tensorboard=self.cfg.logging.tensorboard,
                                     resume_step=self.state.step if resumed else None)  # fmt: skip
        self.progress = Progress(self.total_steps, min(self.state.step, self.total_steps),
                                 main and self.cfg.train.progress)

    def _finish(self, seconds: float) -> dict[str, Any]:
        if self.cfg.loss.clamp == "epoch":  # official: once more after the max_steps break
            clamp_logit_scale_(self.model.log_logit_scale, self.cfg.loss.max_logit_scale)
        last: dict[str, float] = {}
        if self.cfg.eval.at_end and self.state.last_eval_step != self.state.step:
            last = self.run_eval()
        else:
            self._fit_offset()
        self.save_checkpoint()
        self.progress.close()
        summary = {"steps": self.state.step, "epochs_completed": self.state.epoch - 1, "seconds": round(seconds, 3),
                   "final": str(self.out / "final"), "best": str(self.out / "best") if self.state.best_step else None,
                   "best_metric": self.cfg.eval.best_metric, "best_value": self.state.best_value,
                   "best_step": self.state.best_step, "bad_items": len(self.state.bad), "last_eval": last,
                   "train_sources": [{"name": src.name, "rows": len(src.manifest)} for src in self.sources]}  # fmt: skip
        if self.dataset.shift is not None:  # which domains the offsets came from (the config names only the rule)
            summary["domain_shift"] = self.dataset.shift.describe()
        if self.cfg.audio_offset is not None:
            summary["audio_offset"] = self.offset_info
        if self.group_dro is not None:  # where the worst-corpus weights ended
            summary["group_dro"] = self.group_dro.describe()
        if self.centred is not None:  # how many speakers were centred, and how much their clips share
            summary["centred"] = self.centred.means.describe()
        if distributed.is_main():
            save_model_dir(self.model, self.out / "final", {"step": self.state.step, **last})
            atomic_write_json(self.out / "summary.json", summary)
        self.metrics.close()
        distributed.barrier()
        return summary


class _Window:
    """Running means of step metrics and the throughput since the last log line."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.n = 0
        self.samples = 0
        self.t0 = time.perf_counter()

    def add(self, metrics: dict[str, float], samples: int) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += 1
        self.samples += samples

    def means(self) -> dict[str, float]:
        return {k: v / max(1, self.n) for k, v in self.sums.items()}

    def rate(self) -> float:
        return self.samples / max(1e-9, time.perf_counter() - self.t0)


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b, path = old.get(key), new.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed_keys(a, b, f"{path}.")
        elif a != b:
            out.append(path)
    return out


def _format_eval(step: int, metrics: dict[str, float]) -> str:
    keys = [k for k in metrics if k.endswith(("R@1", "/uar")) and "chance" not in k]
    return f"step {step}: " + ", ".join(f"{k.removeprefix('val/')}={metrics[k]:.3f}" for k in keys)


def save_model_dir(model: Any, directory: Path, info: dict[str, Any]) -> Path:
    """``save_pretrained`` into ``directory`` via a sibling temp folder, so it is never half-written."""
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    atomic_write_json(tmp / "metrics.json", info)
    old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def resolve_resume(cfg: RunConfig, resume: str | None) -> Path | None:
    """The checkpoint to resume from: ``auto`` = newest valid one in the output folder (or none),
    a path = that file, ``None``/``"none"`` = fresh (refused when the folder already has checkpoints)."""
    ckpt_dir = Path(cfg.train.output_dir).expanduser() / "checkpoints"
    if resume in (None, "none"):
        if ckpt.list_checkpoints(ckpt_dir):
            raise ConfigError(f"{ckpt_dir} already holds checkpoints: continue with --resume auto, "
                              "or choose another train.output_dir")
        return None
    if resume == "auto":
        return ckpt.find_latest_valid_checkpoint(ckpt_dir)
    path = Path(resume).expanduser()
    if not ckpt.is_valid_checkpoint(path):
        raise CheckpointError(f"{path}: not a complete training checkpoint (missing, truncated or no sidecar)")
    return path


def train(cfg: RunConfig, resume: str | None = None, info: DistributedInfo | None = None) -> dict[str, Any]:
    """Train ``cfg`` (see module docstring). Initialises ``torch.distributed`` under torchrun.

    Args:
        cfg: validated run config.
        resume: ``None``/``"none"``, ``"auto"`` or a checkpoint path.
        info: placement; default from :func:`paraspeechclap.distributed.init_distributed`.

    Returns:
        The run summary.
    """
    if info is None:
        backend = "gloo" if cfg.train.device == "cpu" else None
        info = distributed.init_distributed(backend=backend)
        if cfg.train.device == "cpu" and info.device.type != "cpu":
            info = DistributedInfo(info.rank, info.local_rank, info.world_size, torch.device("cpu"), info.backend)
    if cfg.train.device == "cuda" and info.device.type != "cuda":
        raise ConfigError("train.device=cuda but no GPU is visible")
    path = resolve_resume(cfg, resume)
    threads = torch.get_num_threads()
    try:
        trainer = Trainer(cfg, info)
        if path is not None:
            trainer.resume(path)
            logger.warning("resumed from %s (step %d)", path, trainer.state.step)
        return trainer.fit()
    finally:
        torch.set_num_threads(threads)  # train.num_threads must not outlive the run in a library caller
