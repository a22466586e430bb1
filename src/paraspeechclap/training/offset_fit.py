"""Fitting a training run's stored audio offset (:mod:`paraspeechclap.offset`) on its current weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import ConfigError
from ..offset import carries, gate_vector, gate_weights, offset_vector, within_span
from .config import AudioOffsetConfig
from .data import Source, clip_key
from .evaluate import embed_cached
from .features import FeatureTable

if TYPE_CHECKING:
    from ..model import ParaSpeechCLAP


def follow_batches(model: ParaSpeechCLAP, audio: torch.Tensor, rows: Sequence[Any],
                   cfg: AudioOffsetConfig) -> torch.Tensor:
    """A training step's ``(B, D)`` raw audio embeddings -> ``l2(x) - offset`` (``audio_offset.train``).

    The offset first moves towards ``cfg.scale`` times the mean normalised embedding of the batch's rows
    that carry ``cfg.require`` (by ``cfg.momentum``; no gradient flows into it), so a constant the heads
    add to every embedding is removed rather than learnt as a class prior. The losses normalise again,
    which makes each embedding exactly what inference computes (``l2(l2(x) - offset)``).
    """
    unit = torch.nn.functional.normalize(audio, dim=-1)
    keep = torch.tensor([carries(r, cfg.require) for r in rows], device=unit.device)
    if bool(keep.any()):
        with torch.no_grad():
            target = cfg.scale * unit[keep].mean(0)
            model.audio_offset.mul_(cfg.momentum).add_(target.to(model.audio_offset), alpha=1 - cfg.momentum)
    return unit - model.audio_offset.to(unit)


def fit_audio_offset(model: ParaSpeechCLAP, sources: Sequence[Source], plan: Sequence[tuple[int, int]],
                     table: FeatureTable | None, cfg: AudioOffsetConfig) -> dict[str, Any]:
    """Set ``model``'s offset to ``cfg.scale`` times the mean normalised embedding of the reference clips
    (and, with ``cfg.gate``, its gate between their mean and the other training clips' mean).

    The reference set is each distinct training clip of ``plan`` (``(source, row)`` pairs) whose row
    carries ``cfg.require``. The embeddings are taken without an offset, so refitting does not compound.

    Returns:
        ``{"clips", "scale", "require", "norm"}`` (``norm``: the offset's length); with a gate also
        ``"other_clips"`` and ``"gate"``: the mean gate over the reference clips and over the others.
    """
    model.set_audio_offset(None)
    inside, w_in = reference_embeddings(model, sources, plan, table, cfg.require, True)
    if not len(inside):
        need = f" carrying {', '.join(cfg.require)}" if cfg.require else ""
        raise ConfigError(f"audio_offset: no readable training clip{need} to fit the offset on")
    offset = offset_vector(inside, cfg.scale, w_in)
    if cfg.within:
        offset = within_span(offset, [class_embeddings(model, name) for name in cfg.within])
    info: dict[str, Any] = {"clips": _count(inside, w_in), "scale": cfg.scale, "require": list(cfg.require),
                            "within": list(cfg.within), "norm": round(float(np.linalg.norm(offset)), 4)}
    gate = None
    if cfg.gate:
        outside, w_out = reference_embeddings(model, sources, plan, table, cfg.require, False)
        if not len(outside):
            raise ConfigError(f"audio_offset.gate: every training clip carries {', '.join(cfg.require)}; "
                              "the gate needs others to tell them from")
        gate = gate_vector(offset_vector(inside, 1.0, w_in), offset_vector(outside, 1.0, w_out), cfg.gate_temperature)
        g = [float(np.average(gate_weights(e, gate), weights=w)) for e, w in ((inside, w_in), (outside, w_out))]
        info.update(other_clips=_count(outside, w_out), gate={"reference": round(g[0], 4), "other": round(g[1], 4)})
    model.set_audio_offset(torch.from_numpy(offset), None if gate is None else torch.from_numpy(gate))
    return info


def class_embeddings(model: ParaSpeechCLAP, set_name: str) -> np.ndarray:
    """``(C, D)`` class embeddings of an attribute set as zero-shot classification builds them (prompt ensembles)."""
    from ..data.attributes import get_attribute_set
    from ..evaluation.classification import embed_class_prompts

    aset = get_attribute_set(set_name)
    return embed_class_prompts(model, aset.prompts(ensemble=True), aset.candidates)  # current weights: no stale cache


def _count(emb: np.ndarray, weights: np.ndarray | None) -> int:
    return len(emb) if weights is None else round(float(weights.sum()))


def reference_embeddings(model: ParaSpeechCLAP, sources: Sequence[Source], plan: Sequence[tuple[int, int]],
                         table: FeatureTable | None, require: Sequence[str],
                         carrying: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Normalised embeddings of each distinct training clip of ``plan`` that carries ``require`` (or, with
    ``carrying`` false, that does not), and their weights.

    With a feature ``table``: every cached variant of each clip, weighted ``1 / variants`` so the clip counts
    once. Without: each clip's audio file (unreadable ones left out), weights None (equal).
    """
    feats: list[torch.Tensor] = []
    weights: list[float] = []
    paths: list[str] = []
    seen: set[str] = set()
    for s, i in plan:
        manifest = sources[s].manifest
        key = clip_key(sources, s, i)
        if key in seen or carries(manifest[i], require) != carrying:
            continue
        seen.add(key)
        if table is None:
            paths.append(str(manifest.audio_path(i)))
        elif key in table.entries:
            variants = table.entries[key]
            feats += [v["features"] for v in variants]
            weights += [1.0 / len(variants)] * len(variants)
    if table is None:
        return (model.embed_audio_report(paths, skip_bad=True).embeddings if paths else np.zeros((0, 1))), None
    return (embed_cached(model, feats) if feats else np.zeros((0, 1))), np.asarray(weights)
