"""Loading Hugging Face backbones by hub id or local directory, with errors a user can act on."""

from __future__ import annotations

import os
from typing import Any

from .._quiet import quiet_library_progress
from ..errors import ModelError


def hf_config(model: str, **overrides: Any) -> Any:
    """``AutoConfig.from_pretrained`` with a clear error when the model cannot be found offline."""
    from transformers import AutoConfig

    try:
        with quiet_library_progress():
            return AutoConfig.from_pretrained(model, **overrides)
    except Exception as exc:  # OSError, ValueError, HF hub errors
        raise ModelError(_cannot_load(model, exc)) from None


def hf_model(model: str, config: Any, pretrained: bool) -> Any:
    """Build a HF ``AutoModel`` from ``config``; load the pretrained weights when ``pretrained``.

    ``pretrained=False`` is used when a full checkpoint will overwrite every weight anyway
    (official ``.pth.tar`` files, saved models that store their backbone).
    """
    from transformers import AutoModel

    if not pretrained:
        return AutoModel.from_config(config)
    try:
        with quiet_library_progress():  # no "Loading weights" bar on every load
            return AutoModel.from_pretrained(model, config=config)
    except Exception as exc:
        raise ModelError(_cannot_load(model, exc)) from None


def _cannot_load(model: str, exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if os.path.isdir(model):
        return f"cannot load backbone from directory {model!r}: {first}"
    return (
        f"cannot load backbone {model!r}: it is not a local directory and could not be loaded from the "
        f"Hugging Face cache or hub ({first}); download it once with `huggingface-cli download {model}` "
        f"or pass a local directory"
    )
