"""OpenAPI descriptions of the request bodies (the routes parse JSON and multipart themselves, so the
schemas are declared here for ``/docs``)."""

from __future__ import annotations

from typing import Any

_AUDIO = {"type": "array", "description": "clips: base64 text, {\"data\": base64, \"name\": ...}, or "
          "{\"path\": ...} (only with --allow-paths DIR, inside DIR)",
          "items": {"oneOf": [{"type": "string", "format": "byte"},
                              {"type": "object", "properties": {"data": {"type": "string", "format": "byte"},
                                                                "name": {"type": "string"},
                                                                "path": {"type": "string"}}}]}}
_TEXTS = {"type": "array", "items": {"type": "string"}}
#: the quality gate's threshold, on both routes that take the gate
_GATE_MIN_SNR = {"type": "number", "description": "with quality_gate: the blind-SNR threshold in dB (default 6)"}
_FIELDS: dict[str, dict[str, Any]] = {
    "embed": {"audio": _AUDIO, "captions": _TEXTS},
    "score": {"audio": _AUDIO, "captions": _TEXTS},
    "classify": {"audio": _AUDIO, "candidates": _TEXTS, "template": {"type": "string"},
                 "attribute_sets": {**_TEXTS, "description": "default: the model's sets (GET /v1/models)"}},
    "rerank": {"prompt": {"type": "string"}, "audio": {**_AUDIO, "description": "the candidates"},
               "wer": {"type": "array", "items": {"type": "number"}}, "wer_threshold": {"type": "number"},
               "wer_weight": {"type": "number"},
               "quality_gate": {"type": "boolean", "description": "rank noisy or clipped candidates last; trim edge "
                                "silence before scoring"},
               "gate_min_snr_db": _GATE_MIN_SNR},
    "reward": {"prompts": {**_TEXTS, "description": "one style prompt per clip"},
               "audio": {**_AUDIO, "description": "one clip per prompt"},
               "attribute_sets": {**_TEXTS, "description": "also report per-set agreement with the prompt's tags"},
               "skip_bad": {"type": "boolean", "description": "a bad clip gets reward null instead of a 4xx"},
               "quality_gate": {"type": "boolean", "description": "check noise and clipping (per-clip 'quality'); "
                                "trim edge silence before scoring"},
               "gate_reward": {"type": "number", "description": "with quality_gate: the reward of a clip that fails"},
               "gate_min_snr_db": _GATE_MIN_SNR},
}
_REQUIRED = {"embed": [], "score": ["audio", "captions"], "classify": ["audio"], "rerank": ["prompt", "audio"],
             "reward": ["prompts", "audio"]}


def body_doc(name: str) -> dict[str, Any]:
    """``openapi_extra`` for one route: the same fields as JSON or as multipart form fields."""
    props = _FIELDS[name]
    multipart = {k: ({"type": "array", "items": {"type": "string", "format": "binary"}} if k == "audio" else v)
                 for k, v in props.items()}
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "properties": props, "required": _REQUIRED[name]}},
        "multipart/form-data": {"schema": {"type": "object", "properties": multipart}}}}}
