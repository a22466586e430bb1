"""Saving and loading models: our own format, official checkpoints, and names (``load_model``).

Our format is a directory with ``config.json`` (:class:`~paraspeechclap.config.ModelConfig`, which
names each backbone by registry id) and ``model.safetensors`` (every weight except frozen
parameters of backbones that the installed packages or the hub provide). A model with a centred head
(:mod:`paraspeechclap.centred_head`, fitted after training) keeps it apart in ``centred_head.safetensors``, so
``model.safetensors`` and its checksum (the identity of the plain embeddings) do not change when a head is
fitted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ._quiet import quiet_library_progress
from .atomic import atomic_path, atomic_write_json
from .config import ModelConfig
from .encoders.registry import list_audio_encoders, list_text_encoders
from .errors import CheckpointError, ConfigError, InputError, ModelError
from .model import ParaSpeechCLAP
from .official import (
    OFFICIAL_AUDIO_ENCODER,
    OFFICIAL_TEXT_ENCODER,
    check_state_dict,
    normalize_official_keys,
    official_embed_dim,
    read_state_dict,
)

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
#: the centred head's weights (``centred_projection.*``), beside the model's
CENTRED_HEAD_FILE = "centred_head.safetensors"
CENTRED_HEAD_PREFIX = "centred_projection."
DEFAULT_MODEL = "lite"
#: what :func:`load_model` can load: both sides, or the audio side only
BRANCHES = ("both", "audio")
EMBEDDED_DIR = Path(__file__).parent / "pretrained"
#: released official checkpoints: name -> (hub repo, candidate file names)
RELEASED = {
    "intrinsic": ("ajd12342/paraspeechclap-intrinsic", ("paraspeechclap-intrinsic.pth.tar",)),
    "situational": ("ajd12342/paraspeechclap-situational", ("paraspeechclap-situational.pth.tar",)),
    "combined": ("ajd12342/paraspeechclap-combined", ("slap-combined.pth.tar", "paraspeechclap-combined.pth.tar")),
}


def file_checksum(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- own format ------------------------------------------------------------------------------------
def canonical_safetensors(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """safetensors bytes whose header lists its keys in sorted order.

    The library writes the metadata from a hash map, whose order changes from process to process,
    so the same weights would get a different file checksum (the model's identity) on every save.
    The tensor offsets count from the end of the header, so re-serialising it keeps them valid.
    """
    import struct

    from safetensors.torch import save

    data = save(tensors, metadata=metadata)
    (n,) = struct.unpack("<Q", data[:8])
    header = json.dumps(json.loads(data[8 : 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the format's padding: spaces, to an 8-byte boundary
    return struct.pack("<Q", len(header)) + header + data[8 + n :]


def save_pretrained(model: ParaSpeechCLAP, directory: str | os.PathLike) -> Path:
    """Write ``config.json``, ``model.safetensors`` and, for a model with a centred head,
    ``centred_head.safetensors`` into ``directory`` (each file atomically; the weights byte-identical for
    identical tensors, see :func:`canonical_safetensors`). A head file left from an earlier save of a model
    without one is removed."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
               for k, v in model.stored_state_dict().items()}
    head = {k: tensors.pop(k) for k in [k for k in tensors if k.startswith(CENTRED_HEAD_PREFIX)]}
    meta = {"format": "pt", "paraspeechclap": model.config.name}
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        Path(tmp).write_bytes(canonical_safetensors(tensors, meta))
    if head:
        with atomic_path(directory / CENTRED_HEAD_FILE) as tmp:
            Path(tmp).write_bytes(canonical_safetensors(head, meta))
    atomic_write_json(directory / CONFIG_FILE, model.config.to_dict())
    if not head:
        (directory / CENTRED_HEAD_FILE).unlink(missing_ok=True)
    return directory


def load_saved_model(directory: Path, device: str = "cpu", precision: str = "fp32",
                     model_id: str | None = None, branches: str = "both") -> ParaSpeechCLAP:
    """Load a directory written by :func:`save_pretrained` with strict key checking (of the audio
    side's keys only, with ``branches="audio"``)."""
    cfg_path, weights = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for p in (cfg_path, weights):
        if not p.is_file():
            raise ModelError(f"{directory}: not a saved paraspeechclap model (no {p.name})")
    try:
        cfg = ModelConfig.from_dict(json.loads(cfg_path.read_text(encoding="utf-8")), str(cfg_path))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{cfg_path}: invalid JSON ({exc})") from None
    stored = _read_weights(weights)
    head_file = directory / CENTRED_HEAD_FILE
    if cfg.centred_head:  # strict: the head's keys are checked with the rest
        if not head_file.is_file():
            raise ModelError(f"{directory}: config.json has centred_head but there is no {CENTRED_HEAD_FILE}")
        extra = _read_weights(head_file)
        stray = sorted(k for k in extra if not k.startswith(CENTRED_HEAD_PREFIX))
        if stray:
            raise CheckpointError(f"{head_file}: key(s) outside the centred head: {', '.join(stray[:3])}")
        stored.update(extra)
    # A backbone whose weights are all in the file is built from its config only (no download).
    text = branches == "both"
    if not text:  # the text side's weights are not loaded: nothing to check them against
        stored = {k: v for k, v in stored.items() if not k.startswith(("text_branch.", "text_projection."))}
    model = ParaSpeechCLAP.from_config(
        cfg,
        audio_pretrained=not any(k.startswith("audio_branch.base.") for k in stored) or cfg.audio_trainable is not None,
        text_pretrained=not any(k.startswith("text_branch.base.") for k in stored) or cfg.text_trainable is not None,
        text=text,
    )
    expected = model.stored_state_dict()
    check_state_dict(stored, expected, str(weights))
    model.load_state_dict(stored, strict=False)
    model.model_id = model_id or cfg.name
    model.checksum = file_checksum(weights)
    model.centred_head_checksum = file_checksum(head_file) if cfg.centred_head else ""
    return finalize(model, device, precision)


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: cannot read safetensors file ({exc})") from None


# -- official checkpoints --------------------------------------------------------------------------
def encoder_spec(name: str, kind: str, **defaults: Any) -> dict[str, Any]:
    """A backbone named by registry type (``tiny-wavlm``, ``minilm-l6``...) or by hub id / directory."""
    registered = list_audio_encoders() if kind == "audio" else list_text_encoders()
    if name in registered:
        return {"type": name}
    return {"type": "hf-audio" if kind == "audio" else "hf-text", "model": name, **defaults}


def load_official_checkpoint(
    path: str | os.PathLike,
    audio_encoder: str = OFFICIAL_AUDIO_ENCODER,
    text_encoder: str = OFFICIAL_TEXT_ENCODER,
    pooling: str = "masked_mean",
    device: str = "cpu",
    precision: str = "fp32",
    model_id: str | None = None,
) -> ParaSpeechCLAP:
    """Load an official ``.pth.tar`` state dict with strict key checking (see :mod:`.official`).

    Args:
        path: the checkpoint file.
        audio_encoder / text_encoder: the backbones it was trained with (hub id, local directory, or
            registry type); only their configs are read, every weight comes from the checkpoint.
        pooling: ``"masked_mean"`` (official code since 2026-06-20) or ``"mean"`` (older code:
            padding is averaged in; items are then batched only with equal lengths).
    """
    source = str(path)
    sd = read_state_dict(path)
    audio_spec = {**encoder_spec(audio_encoder, "audio"), "pooling": pooling}
    cfg = ModelConfig(audio_encoder=audio_spec, text_encoder=encoder_spec(text_encoder, "text", pooling="cls"),
                      embed_dim=official_embed_dim(sd, source), name=model_id or Path(source).name)
    model = ParaSpeechCLAP.from_config(cfg, audio_pretrained=False, text_pretrained=False)
    expected = model.state_dict()
    sd = normalize_official_keys(sd, expected)
    check_state_dict(sd, expected, source)
    model.load_state_dict(sd, strict=True)
    model.model_id = cfg.name
    model.checksum = file_checksum(path)
    return finalize(model, device, precision)


def resolve_released(name: str) -> Path:
    """Local path of a released official checkpoint (Hugging Face cache, else download if online)."""
    repo, files = RELEASED[name]
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        raise ModelError("resolving released models needs huggingface_hub") from None
    for f in files:
        hit = try_to_load_from_cache(repo, f)
        if isinstance(hit, str):
            return Path(hit)
    errors = []
    for f in files:
        try:
            return Path(hf_hub_download(repo, f))
        except Exception as exc:  # offline, 404, ...
            errors.append(f"{f}: {str(exc).strip().splitlines()[0][:120]}")
    raise ModelError(
        f"released model {name!r} is not in the Hugging Face cache and could not be downloaded "
        f"({'; '.join(errors)}); download it with `huggingface-cli download {repo}` or pass the .pth.tar path"
    )


# -- entry point -----------------------------------------------------------------------------------
def model_dir(name: str | None) -> Path | None:
    """The folder a model was loaded from (embedded or saved; None for official checkpoints and
    released names), where files that belong to it, such as a shipped ``calibration.json``, live."""
    if name is None or name == DEFAULT_MODEL or (EMBEDDED_DIR / name).is_dir():
        return EMBEDDED_DIR / (name or DEFAULT_MODEL)
    return Path(name) if Path(name).is_dir() else None


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise InputError(f"device must be auto, cpu or cuda, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("device cuda requested but no CUDA GPU is available")
    return device


def finalize(model: ParaSpeechCLAP, device: str, precision: str) -> ParaSpeechCLAP:
    """Eval mode, device, precision."""
    model.eval()
    model.to(resolve_device(device))
    return model.set_precision(precision)


def load_model(
    name_or_path: str | os.PathLike | None = None,
    *,
    audio_encoder: str | None = None,
    text_encoder: str | None = None,
    device: str = "cpu",
    precision: str = "auto",
    pooling: str = "masked_mean",
    branches: str = "both",
) -> ParaSpeechCLAP:
    """Load a model by name or path, ready for inference (eval mode).

    Args:
        name_or_path: ``None``/``"lite"`` (the embedded default model), a saved-model directory, a
            released model name (``"intrinsic"``, ``"situational"``, ``"combined"``), or an official
            ``.pth.tar`` file (with ``audio_encoder``/``text_encoder``, default the official pair).
        audio_encoder / text_encoder: backbones of an official checkpoint: hub id, local directory
            or registry type.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        precision: ``"auto"`` (bf16 where the device computes it natively, else fp32; the
            resolved value is ``model.precision``), ``"fp32"``, ``"bf16"`` or ``"int8"``. For the
            official code's numbers pass ``"fp32"`` (``evaluate`` does so by default for official
            checkpoints, see :func:`is_official_checkpoint`): bf16 embeddings differ by about 4e-3.
        pooling: speech pooling of official checkpoints (``"masked_mean"`` or the older ``"mean"``).
        branches: ``"both"``, or ``"audio"``: the audio side only, for a process that only embeds
            clips (a worker): the text backbone is neither imported nor loaded, and ``embed_text``
            raises :class:`ModelError`. Saved models and the embedded ones; an official checkpoint
            loads both whatever this says (its strict loading checks the whole state dict).

    Raises:
        ModelError: unknown name, missing files, or backbones that cannot be found.
        CheckpointError: a checkpoint that is not one or does not match the encoders.
    """
    if branches not in BRANCHES:
        raise InputError(f"branches must be one of {', '.join(BRANCHES)}, got {branches!r}")
    with quiet_library_progress():  # no library progress bars on every load
        return _load_model(DEFAULT_MODEL if name_or_path is None else str(name_or_path), audio_encoder,
                           text_encoder, device, precision, pooling, branches)


def is_official_checkpoint(name_or_path: str | os.PathLike | None) -> bool:
    """Whether :func:`load_model` loads ``name_or_path`` as an official ``.pth.tar`` checkpoint.

    True for a released model name (``intrinsic``, ``situational``, ``combined``) and for a file
    (every file that is not a saved-model directory is read as an official state dict); False for
    the embedded models, saved-model directories and unknown names. Nothing is downloaded or read.
    """
    name = DEFAULT_MODEL if name_or_path is None else str(name_or_path)
    if name in RELEASED:
        return True
    if name == DEFAULT_MODEL or ("/" not in name and (EMBEDDED_DIR / name / CONFIG_FILE).is_file()):
        return False
    return Path(name).is_file()


def _load_model(name: str, audio_encoder: str | None, text_encoder: str | None, device: str, precision: str,
                pooling: str, branches: str = "both") -> ParaSpeechCLAP:
    official_kw = dict(audio_encoder=audio_encoder or OFFICIAL_AUDIO_ENCODER,
                       text_encoder=text_encoder or OFFICIAL_TEXT_ENCODER,
                       pooling=pooling, device=device, precision=precision)
    if name in RELEASED:
        return load_official_checkpoint(resolve_released(name), model_id=f"paraspeechclap-{name}", **official_kw)
    embedded = EMBEDDED_DIR / name
    if "/" not in name and (embedded / CONFIG_FILE).is_file():
        return load_saved_model(embedded, device, precision, model_id=name, branches=branches)
    if name == DEFAULT_MODEL:
        raise ModelError(
            "the embedded default model 'lite' is not part of this installation yet; pass --model with a "
            "saved-model directory, a released model name or an official .pth.tar checkpoint"
        )
    path = Path(name)
    if path.is_dir():
        return load_saved_model(path, device, precision, branches=branches)
    if path.is_file():
        return load_official_checkpoint(path, **official_kw)
    known = ", ".join(m.name for m in list_models())
    raise ModelError(f"unknown model {name!r}: not a directory, a checkpoint file or a model name ({known})")


@dataclass
class ModelInfo:
    """One entry of :func:`list_models`."""

    name: str
    kind: str  # "embedded" | "released"
    available: bool
    location: str
    description: str


def list_models() -> list[ModelInfo]:
    """Models that can be loaded by name, and whether each is available here now."""
    out = []
    for d in sorted(p for p in EMBEDDED_DIR.glob("*") if (p / CONFIG_FILE).is_file()):
        out.append(ModelInfo(d.name, "embedded", True, str(d), "shipped with the package; works offline"))
    if not any(m.name == DEFAULT_MODEL for m in out):
        out.insert(0, ModelInfo(DEFAULT_MODEL, "embedded", False, "", "not shipped in this version yet"))
    for name, (repo, files) in RELEASED.items():
        local = _cached_released(repo, files)
        out.append(ModelInfo(name, "released", local is not None, local or f"hf://{repo}",
                             f"official ParaSpeechCLAP-{name.capitalize()} (WavLM-Large + Granite 278m)"))
    return out


def _cached_released(repo: str, files: tuple[str, ...]) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    for f in files:
        hit = try_to_load_from_cache(repo, f)
        if isinstance(hit, str):
            return hit
    return None
