"""Periodic development evaluation during training: retrieval and zero-shot classification.

Follows the evaluation protocol of :mod:`paraspeechclap.evaluation` (full-length clips, normalised
embeddings, cosine similarity, captions de-duplicated by exact string, audio-to-text ranks) and
reports flat ``val/...`` metrics for the training log (names built by :mod:`.metric_names`, which
the config also checks ``eval.best_metric`` against):

* ``val/audio_to_text/R@1`` (also R@5, R@10, median/mean rank) and ``val/text_to_audio/...``;
  ``val/audio_to_text/chance_R@1`` is ``1 / unique captions``, the R@1 of a random ranking;
* per attribute set ``S`` of ``eval.attribute_sets``: ``val/S/uar`` (mean recall over the
  candidates), ``val/S/accuracy`` and ``val/S/count`` (clips with a gold label).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..evaluation.classification import classification_metrics, embed_class_prompts, predict_labels
from ..evaluation.retrieval import dedupe_captions, retrieval_metrics
from .config import EvalConfig
from .data import DevSet
from .features import FeatureTable
from .metric_names import CHANCE_R1, CLASSIFICATION_KEYS, CLIPS, SKIPPED, classification_name, retrieval_name

if TYPE_CHECKING:
    from ..model import ParaSpeechCLAP

logger = logging.getLogger(__name__)


@torch.no_grad()
def embed_dev_audio(model: ParaSpeechCLAP, dev: DevSet, batch_size: int,
                    features: FeatureTable | None = None) -> tuple[np.ndarray, list[int], int]:
    """``(K, D)`` normalised embeddings of the dev clips that could be read, their indices, and
    the number skipped. With ``features`` (frozen-backbone mode) the cached full-length backbone
    outputs go through ``forward_head`` and the projection only."""
    if features is None:
        res = model.embed_audio_report(dev.paths, batch_size=batch_size, skip_bad=True)
        return res.embeddings, list(res.indices), len(res.errors)
    kept = [i for i, k in enumerate(dev.keys) if k in features.entries]
    if not kept:
        return np.zeros((0, model.config.embed_dim), np.float32), [], len(dev)
    return embed_cached(model, [features.entries[dev.keys[i]][0]["features"] for i in kept]), kept, len(dev) - len(kept)


@torch.no_grad()
def embed_cached(model: ParaSpeechCLAP, features: Sequence[torch.Tensor], batch_size: int = 256,
                 at: str = "embedding") -> np.ndarray:
    """Cached backbone outputs (one equal-shaped tensor per clip) -> ``(N, D)`` normalised embeddings,
    through ``forward_head`` and the projection in eval mode (``at="linear1"``: the projection's first
    linear layer's output instead, unnormalised)."""
    was_training = model.training
    model.eval()
    out = []
    for s in range(0, len(features), batch_size):
        pooled = model.audio_branch.forward_head(torch.stack(list(features[s:s + batch_size])).to(model.device))
        emb = model.audio_projection.linear1(pooled) if at == "linear1" else model.project_audio(pooled, normalize=True)
        out.append(emb.float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(out)


def retrieval_scores(audio: np.ndarray, captions: Sequence[str], model: ParaSpeechCLAP) -> dict[str, float]:
    """Flat ``val/`` retrieval metrics of clips ``audio (N, D)`` against their ``captions``."""
    unique, gt = dedupe_captions(list(captions))
    text = model.embed_text(unique)
    metrics = retrieval_metrics(audio @ text.T, gt)
    out = {retrieval_name(direction, k): float(v) for direction, m in metrics.items() for k, v in m.items()}
    out[CHANCE_R1] = 1.0 / len(unique)
    return out


def classification_scores(audio: np.ndarray, rows: Sequence[dict[str, Any]], model: ParaSpeechCLAP,
                          set_name: str, ensemble: bool) -> dict[str, float]:
    """Flat ``val/<set>/`` zero-shot metrics; empty when no clip has a gold label of the set."""
    from ..data.attributes import get_attribute_set

    aset = get_attribute_set(set_name)
    gold = [aset.gold(r) for r in rows]
    keep = [i for i, g in enumerate(gold) if g is not None]
    if not keep:
        return {}
    prompts = aset.prompts(ensemble=ensemble)
    classes = embed_class_prompts(model, prompts, aset.candidates)
    pred = predict_labels(audio[keep] @ classes.T, list(aset.candidates))
    m = classification_metrics([gold[i] for i in keep], pred, list(aset.candidates))  # type: ignore[misc]
    return {classification_name(set_name, k): float(m[k]) for k in CLASSIFICATION_KEYS}


def evaluate_dev(model: ParaSpeechCLAP, dev: DevSet, cfg: EvalConfig,
                 features: FeatureTable | None = None) -> dict[str, float]:
    """All dev metrics (see module docstring); the model is left in its previous train/eval mode."""
    was_training = model.training
    audio, kept, skipped = embed_dev_audio(model, dev, cfg.batch_size, features)
    metrics: dict[str, float] = {CLIPS: float(len(kept)), SKIPPED: float(skipped)}
    if kept:
        metrics.update(retrieval_scores(audio, [dev.captions[i] for i in kept], model))
        rows = [dev.rows[i] for i in kept]
        for name in cfg.attribute_sets:
            metrics.update(classification_scores(audio, rows, model, name, cfg.prompt_ensemble))
    else:
        logger.warning("no dev clip could be embedded; skipping dev metrics")
    model.train(was_training)
    return metrics
