"""The costly stage of ``annotate``, one shard at a time: decode, measure, embed.

A *stage shard* (``OUT/work/part-NNNNN.parquet``) holds, for a fixed slice of the inputs, each
clip's DSP measurements (:func:`paraspeechclap.audio.measure.measure`, on the decoded samples at
their own rate) and its projected audio embedding (uncentred, L2-normalised), or the reason it
could not be read. Labels are not in it: they are cheap, and depend on settings (centring,
calibration, thresholds) that a re-run may change without embedding anything again.

Three steps, timed separately for ``run.json``: ``decode`` (read + resample to 16 kHz),
``measure`` (DSP) and ``embed`` (the model, in batches).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..audio.measure import KEYS as MEASURE_KEYS
from ..errors import AudioError
from .inputs import InputItem

#: the measurement columns of the output, in order
MEASUREMENTS: tuple[str, ...] = MEASURE_KEYS
#: steps of the stage, in order (the keys of its timings)
STEPS: tuple[str, ...] = ("decode", "measure", "embed")


def stage_schema(dim: int) -> Any:
    """Arrow schema of a stage shard with ``dim``-dimensional embeddings."""
    import pyarrow as pa

    return pa.schema([("index", pa.int64()), ("audio_path", pa.string()), ("source", pa.string()),
                      ("speaker", pa.string()), ("error", pa.string()),
                      *[(k, pa.float64()) for k in MEASUREMENTS],
                      ("embedding", pa.list_(pa.float32(), dim))])


def shard_path(work: Path, shard: int) -> Path:
    return work / f"part-{shard:05d}.parquet"


def _decode(item: InputItem, min_samples: int) -> tuple[np.ndarray, int, np.ndarray]:
    """Native samples, their rate, and the validated 16 kHz waveform the model takes."""
    from ..audio.io import load_audio, read_audio

    wav, sr = read_audio(item.path)
    return wav, sr, load_audio(wav, sr, min_samples=min_samples, name=str(item.path))


@dataclass
class Decoded:
    """A shard after decoding and measuring: what the embed step needs, and what it passes on.

    Attributes:
        items: the shard's clips.
        errors: position in ``items`` -> why the clip cannot be used.
        measurements: position -> :func:`~paraspeechclap.audio.measure.measure` of the clip.
        waveforms: the usable clips' validated 16 kHz waveforms, in item order.
        seconds: time spent per step so far.
    """

    items: list[InputItem]
    errors: dict[int, str] = field(default_factory=dict)
    measurements: dict[int, dict[str, Any]] = field(default_factory=dict)
    waveforms: list[np.ndarray] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STEPS, 0.0))


def decode_and_measure(items: Sequence[InputItem], min_samples: int, measured: bool = True) -> Decoded:
    """Decode every clip once, measure it at its own rate (unless ``measured`` is False: ``embed`` and
    ``index`` need only the embeddings), and keep its 16 kHz waveform."""
    from ..audio.measure import measure

    out = Decoded(list(items))
    for k, item in enumerate(items):
        t0 = time.perf_counter()
        try:
            native, sr, wav16 = _decode(item, min_samples)
        except AudioError as exc:
            out.errors[k] = str(exc)
            continue
        finally:
            out.seconds["decode"] += time.perf_counter() - t0
        if measured:
            t0 = time.perf_counter()
            out.measurements[k] = measure(native, sr)
            out.seconds["measure"] += time.perf_counter() - t0
        out.waveforms.append(wav16)
    return out


def embed_decoded(model: Any, decoded: Decoded, batch_size: int) -> Any:
    """The shard's :func:`stage_schema` table: ``decoded`` plus the model's embeddings (times the embed step)."""
    t0 = time.perf_counter()
    emb = embed_releasing(model, decoded.waveforms, batch_size) if decoded.waveforms else None
    decoded.seconds["embed"] += time.perf_counter() - t0
    return _table(decoded.items, decoded.errors, decoded.measurements, emb, model.config.embed_dim)


def embed_releasing(model: Any, wavs: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
    """``(N, D)`` embeddings of 16 kHz ``wavs``, one batch at a time (longest first, as ``embed_audio``
    batches them), handing freed memory back to the system between batches.

    Each batch of a shard has other shapes, and glibc serves its tensors from holes the previous ones
    left; the heap's resident size then climbs through a shard by an amount that differs from run to
    run (peak RSS of ``annotate`` on the same 1,000 clips: 0.97 to 1.20 GB; with this, 1.01 to 1.04 GB,
    and 1.02 GB at 4,000 clips, at the same speed: ``benchmarks/annotate.py``). An item's embedding
    does not depend on its batch, so the result is ``embed_audio``'s.
    """
    from ..encoders.base import release_freed_memory

    order = sorted(range(len(wavs)), key=lambda i: -len(wavs[i]))
    out = np.empty((len(wavs), int(model.config.embed_dim)), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        out[idx] = model.embed_audio([wavs[i] for i in idx], sample_rate=16_000, batch_size=batch_size)
        release_freed_memory()
    return out


def run_shard(model: Any, items: Sequence[InputItem], batch_size: int, measured: bool = True
              ) -> tuple[Any, dict[str, float]]:
    """Decode, measure and embed one shard's clips in this process.

    Args:
        model: a loaded :class:`~paraspeechclap.model.ParaSpeechCLAP`.
        items: the shard's clips.
        batch_size: clips per forward pass.

    Returns:
        ``(table, seconds)``: a :func:`stage_schema` table with one row per item (in order; a clip
        that cannot be read has ``error`` set and null measurements and embedding) and the seconds
        spent in each of :data:`STEPS`.
    """
    decoded = decode_and_measure(items, model.audio_branch.min_samples, measured)
    return embed_decoded(model, decoded, batch_size), decoded.seconds


def _table(items: Sequence[InputItem], errors: dict[int, str], meas: dict[int, dict[str, Any]],
           emb: np.ndarray | None, dim: int) -> Any:
    import pyarrow as pa

    good = [k for k in range(len(items)) if k not in errors]
    vectors: list[Any] = [None] * len(items)
    for row, k in enumerate(good):
        vectors[k] = emb[row]  # type: ignore[index]
    cols: dict[str, list[Any]] = {
        "index": [it.index for it in items], "audio_path": [str(it.path) for it in items],
        "source": [it.source for it in items], "speaker": [it.speaker for it in items],
        "error": [errors.get(k) for k in range(len(items))],
    }
    for key in MEASUREMENTS:
        cols[key] = [meas[k][key] if k in meas else None for k in range(len(items))]
    cols["embedding"] = vectors
    return pa.Table.from_pydict(cols, schema=stage_schema(dim))
