"""Registries of audio and text encoder types.

An encoder is described by a JSON-serialisable *spec*: ``{"type": NAME, **options}``. The type
names a registered builder; options are passed to it as keyword arguments. The spec is what
``config.json`` stores, so a saved model names its backbones by registry id.

Builders are registered by the modules in :data:`_BUILTIN_MODULES`, imported on first use (no
import-time work in ``paraspeechclap/__init__``).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, TypeVar

from ..errors import ModelError
from .base import AudioEncoder, TextEncoder

_AUDIO: dict[str, Callable[..., AudioEncoder]] = {}
_TEXT: dict[str, Callable[..., TextEncoder]] = {}
_BUILTIN_MODULES = (
    "paraspeechclap.encoders.hf_audio",
    "paraspeechclap.encoders.hf_text",
    "paraspeechclap.encoders.whisper",
    "paraspeechclap.encoders.tiny",
)
_loaded = False

F = TypeVar("F", bound=Callable[..., Any])


def register_audio_encoder(name: str) -> Callable[[F], F]:
    """Decorator registering an audio encoder builder under ``name``."""

    def deco(fn: F) -> F:
        _AUDIO[name] = fn
        return fn

    return deco


def register_text_encoder(name: str) -> Callable[[F], F]:
    """Decorator registering a text encoder builder under ``name``."""

    def deco(fn: F) -> F:
        _TEXT[name] = fn
        return fn

    return deco


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        for mod in _BUILTIN_MODULES:
            importlib.import_module(mod)
        _loaded = True


def list_audio_encoders() -> list[str]:
    _load_builtins()
    return sorted(_AUDIO)


def list_text_encoders() -> list[str]:
    _load_builtins()
    return sorted(_TEXT)


def _build(table: dict[str, Callable[..., Any]], kind: str, spec: dict[str, Any], **overrides: Any) -> Any:
    _load_builtins()
    if "type" not in spec:
        raise ModelError(f"{kind} encoder spec has no 'type' field: {spec!r}")
    spec = dict(spec)
    name = spec.pop("type")
    if name not in table:
        raise ModelError(f"unknown {kind} encoder type {name!r}; registered: {', '.join(sorted(table))}")
    builder = table[name]
    params = inspect.signature(builder).parameters
    # ``pretrained=False`` (config only, weights come from a checkpoint) means nothing to builders
    # whose weights are not downloaded; they simply do not declare the argument.
    if "pretrained" in overrides and "pretrained" not in params:
        overrides = {k: v for k, v in overrides.items() if k != "pretrained"}
    try:
        inspect.signature(builder).bind(**spec, **overrides)
    except TypeError as exc:  # unknown or missing option in a hand-written spec
        raise ModelError(f"bad options for {kind} encoder {name!r}: {exc}") from None
    return builder(**spec, **overrides)


def create_audio_encoder(spec: dict[str, Any], **overrides: Any) -> AudioEncoder:
    """Build an audio encoder from its spec (see module docstring)."""
    return _build(_AUDIO, "audio", spec, **overrides)


def create_text_encoder(spec: dict[str, Any], **overrides: Any) -> TextEncoder:
    """Build a text encoder from its spec (see module docstring)."""
    return _build(_TEXT, "text", spec, **overrides)
