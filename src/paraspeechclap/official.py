"""Exact loading of the released official ParaSpeechCLAP checkpoints (plain state-dict ``.pth.tar``).

The official loader falls back to ``strict=False`` and silently ignores mismatches. Here every key
must match, except for the documented variants, which are normalised first:

* ``logit_scale`` (ParaCLAP-era checkpoints, holding the log of the scale) -> ``log_logit_scale``;
* ``*.embeddings.position_ids`` present or absent (a buffer persisted by older ``transformers``);
* WavLM's weight-normed positional convolution saved as ``weight_g``/``weight_v`` (old
  ``torch.nn.utils.weight_norm``) or ``parametrizations.weight.original0/1`` (new parametrisation).

Anything else is a :class:`~paraspeechclap.errors.CheckpointError` that lists the keys.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from .errors import CheckpointError

OFFICIAL_AUDIO_ENCODER = "microsoft/wavlm-large"
OFFICIAL_TEXT_ENCODER = "ibm-granite/granite-embedding-278m-multilingual"

_WEIGHT_NORM = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}
_WEIGHT_NORM_INV = {v: k for k, v in _WEIGHT_NORM.items()}
_POSITION_IDS = re.compile(r"(^|\.)embeddings\.position_ids$")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a flat state dict saved with ``torch.save`` (``weights_only=True``: no code is run)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({first[:200]})") from None
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a flat state dict of tensors (as the official checkpoints are)")
    return dict(obj)


def normalize_official_keys(sd: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the documented key variants of ``sd`` onto the names in ``expected`` (our model's state dict)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key == "logit_scale" and "log_logit_scale" not in sd:
            key = "log_logit_scale"  # ParaCLAP naming; the value is already the log scale
        elif _POSITION_IDS.search(key) and key not in expected:
            continue  # persisted buffer of older transformers; recomputed by the model
        else:
            key = _rename_weight_norm(key, expected)
        out[key] = value
    for key, value in expected.items():  # buffer expected but absent from an older/newer checkpoint
        if _POSITION_IDS.search(key) and key not in out:
            out[key] = value
    return out


def _rename_weight_norm(key: str, expected: Mapping[str, Any]) -> str:
    if key in expected:
        return key
    head, _, leaf = key.rpartition(".")
    if leaf in _WEIGHT_NORM and f"{head}.{_WEIGHT_NORM[leaf]}" in expected:
        return f"{head}.{_WEIGHT_NORM[leaf]}"
    for new, old in _WEIGHT_NORM_INV.items():
        if key.endswith("." + new):
            candidate = key[: -len(new)] + old
            if candidate in expected:
                return candidate
    return key


def check_state_dict(sd: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], source: str,
                     allowed_missing: set[str] | frozenset[str] = frozenset()) -> None:
    """Raise :class:`CheckpointError` listing missing, unexpected and mis-shaped keys."""
    missing = sorted(set(expected) - set(sd) - set(allowed_missing))
    unexpected = sorted(set(sd) - set(expected))
    shapes = sorted(k for k in set(sd) & set(expected) if tuple(sd[k].shape) != tuple(expected[k].shape))
    if not (missing or unexpected or shapes):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {_short(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {_short(unexpected)}")
    if shapes:
        parts.append("shape mismatch: " + _short(
            [f"{k} {tuple(sd[k].shape)} vs model {tuple(expected[k].shape)}" for k in shapes]))
    raise CheckpointError(f"{source} does not match the model: " + "; ".join(parts))


def _short(keys: list[str], n: int = 8) -> str:
    return ", ".join(keys[:n]) + (f", ... (+{len(keys) - n} more)" if len(keys) > n else "")


def official_embed_dim(sd: Mapping[str, torch.Tensor], source: str) -> int:
    """The embedding size, read from the checkpoint (rows of ``audio_projection.linear1``)."""
    w = sd.get("audio_projection.linear1.weight")
    if w is None or w.ndim != 2:
        raise CheckpointError(f"{source}: no audio_projection.linear1.weight; not a ParaSpeechCLAP checkpoint")
    return int(w.shape[0])
