"""Batched, deterministic inference: ``embed_audio``, ``embed_text``, ``score``, ``classify``.

Mixed into :class:`paraspeechclap.model.ParaSpeechCLAP`. Audio items are decoded, resampled and
validated one by one (:func:`paraspeechclap.audio.load_audio`), cut into windows no longer than the
backbone's ``window_samples``, prepared by the backbone, and batched as the backbone allows
(``batch_mode``): padded with masks, or only with items of equal length. A long item's windows are
combined exactly: encoders with frame statistics (``window_moments``: counts, sums, sums of squares)
sum them over the windows and pool once, which equals pooling the concatenated frames of those
windows (the Whisper backbones, whose mean and standard deviation a plain average of the windows'
outputs would only approximate); the other encoders pool by mean only, where the frame-weighted
mean of the windows' outputs is exact. An item shorter than one window is a single window, so its
embedding is exactly the unwindowed one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import torch

from .audio.io import AudioItem, describe_item, load_audio
from .centering import Centering, center_embeddings, check_mode, check_speakers, head_for
from .encoders.base import AudioEncoder, PreparedAudio
from .errors import AudioError, InputError

if TYPE_CHECKING:
    from .model import ParaSpeechCLAP

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "A person is speaking in a {} style."
PRECISIONS = ("fp32", "bf16", "int8")
#: what ``precision="auto"`` may pick; the CLI and :func:`~paraspeechclap.load_model` default to it.
AUTO_PRECISION = "auto"
#: environment variable that overrides what ``"auto"`` resolves to (``bf16`` or ``fp32``); a variable,
#: not an argument, so that subprocesses (CLI runs, servers, workers) inherit the choice.
AUTO_PRECISION_ENV = "PARASPEECHCLAP_AUTO_PRECISION"
#: ``/proc/cpuinfo`` flags of CPUs with bfloat16 matrix instructions (without them bf16 is emulated,
#: slower than fp32).
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU multiplies bfloat16 natively (Linux ``/proc/cpuinfo`` flags; False elsewhere)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    flags = {w for line in cpuinfo.splitlines() if line.startswith("flags") for w in line.split()}
    return any(f in flags for f in _BF16_CPU_FLAGS)


def auto_precision_override() -> str | None:
    """The value of :data:`AUTO_PRECISION_ENV` (``"bf16"``/``"fp32"``), or None when unset or empty.

    Raises:
        InputError: any other value.
    """
    value = os.environ.get(AUTO_PRECISION_ENV, "").strip().lower()
    if not value:
        return None
    if value not in ("bf16", "fp32"):
        raise InputError(f"{AUTO_PRECISION_ENV} must be bf16 or fp32, got {value!r}")
    return value


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``"auto"`` -> :data:`AUTO_PRECISION_ENV` when set, else ``"bf16"`` where ``device`` computes
    bfloat16 natively (a CUDA GPU that supports it, a CPU with AVX512-BF16 or AMX), else ``"fp32"``;
    other values are returned as they are.

    bf16 embeddings agree with fp32 ones to a cosine of about 0.9999 (``benchmarks/inference.py``)
    at up to 1.8x the speed on such CPUs; pass ``"fp32"`` for the exact reference numbers.
    """
    if precision != AUTO_PRECISION:
        return precision
    override = auto_precision_override()
    if override is not None:
        return override
    dev = torch.device(device)
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if dev.type == "cpu" and cpu_has_bf16() else "fp32"
_TEXT_CACHE_SIZE = 4096


@dataclass
class AudioEmbeddings:
    """Result of :meth:`InferenceMixin.embed_audio_report`.

    Attributes:
        embeddings: ``(K, D)`` float32, L2-normalised, for the items that could be embedded.
        indices: ``(K,)`` index into the input sequence of each row.
        errors: ``(index, message)`` of each item that could not be embedded.
    """

    embeddings: np.ndarray
    indices: list[int]
    errors: list[tuple[int, str]] = field(default_factory=list)
    centering: Centering = field(default_factory=Centering)
    #: ``(K, D)`` float64: the centred head's ``linear1`` output of each row, where speaker centring uses it
    centred_rows: np.ndarray | None = field(default=None, repr=False)


@dataclass
class _Window:
    item: int  # index of the item in the block
    weight: float  # frames this window contributes to the item's mean
    prepared: PreparedAudio


def split_windows(wav: np.ndarray, window: int) -> list[np.ndarray]:
    """Cut ``(S,)`` into ``ceil(S / window)`` contiguous windows of near-equal length (none longer
    than ``window``), so that no tiny tail window is left over."""
    n = max(1, math.ceil(wav.shape[0] / window))
    bounds = np.linspace(0, wav.shape[0], n + 1).round().astype(int)
    return [wav[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _batches(windows: list[_Window], batch_size: int, mode: str,
             max_positions: int | None = None) -> Iterator[list[_Window]]:
    """Group windows into batches: by descending length (``mask``), or by equal length.

    A batch holds at most ``batch_size`` windows and, with ``max_positions`` (the encoder's
    ``max_batch_positions``), at most that many padded positions: its longest window's length times
    its number of windows (a longer window goes alone).
    """
    order = sorted(range(len(windows)), key=lambda i: (-windows[i].prepared.length, i))
    if mode == "mask":
        runs = [order]
    else:
        groups: dict[int, list[int]] = {}
        for i in order:
            groups.setdefault(windows[i].prepared.length, []).append(i)
        runs = list(groups.values())
    for run in runs:
        batch: list[int] = []
        for i in run:
            longest = windows[batch[0]].prepared.length if batch else 0  # runs are sorted longest first
            if batch and (len(batch) >= batch_size
                          or (max_positions is not None and (len(batch) + 1) * longest > max_positions)):
                yield [windows[j] for j in batch]
                batch = []
            batch.append(i)
        if batch:
            yield [windows[j] for j in batch]


def _windows(enc: AudioEncoder, pieces: list[list[np.ndarray]]) -> list[_Window]:
    """Each item's windows, prepared, weighted by their frame counts."""
    return [_Window(i, float(enc.num_frames(len(w))), enc.prepare(w)) for i, ws in enumerate(pieces) for w in ws]


def _batch_inputs(batch: list[_Window], device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    inputs = collate_prepared([w.prepared for w in batch])
    return {k: v.to(device, dtype if v.is_floating_point() else v.dtype) for k, v in inputs.items()}


def frozen_from_windows(enc: AudioEncoder, wavs: Sequence[np.ndarray], pieces: Sequence[list[np.ndarray]],
                        batch_size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Clips (``wavs``, cut into ``pieces`` by :func:`split_windows`) -> ``(N, F)`` ``forward_frozen``
    features of whole clips, from their windows' summed frame statistics (``window_moments``: exactly
    pooling the concatenated frames) and extras measured on each whole clip. The one implementation
    inference and the training feature cache share, so both see the same features of a long clip.
    """
    moments: torch.Tensor | None = None
    for batch in _batches(_windows(enc, list(pieces)), batch_size, enc.batch_mode, enc.max_batch_positions):
        inputs = _batch_inputs(batch, device, dtype)
        rows = enc.window_moments(inputs["features"], inputs["lengths"]).cpu()  # (b, K) float64
        if moments is None:
            moments = torch.zeros(len(wavs), rows.shape[1], dtype=torch.float64)
        for w, r in zip(batch, rows):
            moments[w.item] += r
    assert moments is not None, "no windows"
    extras = collate_prepared([PreparedAudio(torch.zeros(1), enc.clip_extras(w)) for w in wavs])
    extras = {k: v.to(device, dtype) for k, v in extras.items() if k not in ("features", "lengths")}
    return enc.frozen_from_moments(moments.to(device), **extras)


def collate_prepared(items: Sequence[PreparedAudio]) -> dict[str, torch.Tensor]:
    """Zero-pad features on the last axis and stack extras: ``{"features", "lengths", **extras}``."""
    longest = max(p.length for p in items)
    feats = torch.stack([torch.nn.functional.pad(p.features, (0, longest - p.length)) for p in items])
    out = {"features": feats, "lengths": torch.tensor([p.length for p in items], dtype=torch.long)}
    for key in items[0].extras:
        out[key] = torch.stack([p.extras[key] for p in items])
    return out


class InferenceMixin:
    """Inference methods of ParaSpeechCLAP (see module docstring)."""

    model_id: str
    checksum: str
    centred_head_checksum: str

    def _init_inference_state(self) -> None:
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.model_id = "custom"
        self.checksum = ""
        self.centred_head_checksum = ""  # of centred_head.safetensors, for a loaded model with a centred head
        self.precision = "fp32"

    # -- device and precision --------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device  # type: ignore[attr-defined]

    def set_precision(self: "ParaSpeechCLAP", precision: str) -> "ParaSpeechCLAP":
        """``fp32``; ``bf16`` (weights cast to bfloat16: matrix units on recent CPUs and GPUs);
        ``int8`` (dynamic quantisation of the feed-forward layers only, CPU); or ``auto``
        (:func:`resolve_precision`: bf16 where the device computes it natively, else fp32)."""
        if precision not in (*PRECISIONS, AUTO_PRECISION):
            raise InputError(f"precision must be one of {', '.join((*PRECISIONS, AUTO_PRECISION))}, got {precision!r}")
        precision = resolve_precision(precision, self.device)
        if precision == "bf16":
            kept = {k: getattr(self, k).clone() for k in self.OFFSET_BUFFERS if getattr(self, k) is not None}
            self.to(torch.bfloat16)
            for k, v in kept.items():  # calibration vectors: applied to float32 embeddings (offset_audio), kept exact
                setattr(self, k, v)
        elif precision == "int8":
            names = [f"audio_branch.{n}" for n in self.audio_branch.feed_forward_linears()]
            if self.text_branch is not None:
                names += [f"text_branch.{n}" for n in self.text_branch.feed_forward_linears()]
            if self.device.type != "cpu":
                raise InputError("int8 dynamic quantisation runs on the CPU only; use --device cpu")
            if names:
                import warnings

                from torch.ao.quantization import quantize_dynamic

                with warnings.catch_warnings():  # torch deprecates the quantized dtypes it still uses here
                    warnings.simplefilter("ignore", UserWarning)
                    warnings.simplefilter("ignore", DeprecationWarning)
                    quantize_dynamic(self, qconfig_spec=set(names), dtype=torch.qint8, inplace=True)
        self.precision = precision
        self._text_cache.clear()
        return self

    @property
    def _dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.precision == "bf16" else torch.float32

    def train(self, mode: bool = True):  # type: ignore[override]
        self._text_cache.clear()  # weights may change while training
        return super().train(mode)  # type: ignore[misc]

    def load_state_dict(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        self._text_cache.clear()
        return super().load_state_dict(*args, **kwargs)  # type: ignore[misc]

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        was_training = self.training  # type: ignore[attr-defined]
        if was_training:
            self.eval()  # type: ignore[attr-defined]
        try:
            with torch.inference_mode():
                yield
        finally:
            if was_training:
                self.train(True)

    # -- text ------------------------------------------------------------------------------------
    def embed_text(self: "ParaSpeechCLAP", captions: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Captions -> ``(M, D)`` float32 L2-normalised embeddings (cached per caption string).

        Raises:
            InputError: a caption is empty, whitespace or not a string.
        """
        self.require_text()
        captions = list(captions)
        for i, c in enumerate(captions):
            if not isinstance(c, str) or not c.strip():
                raise InputError(f"caption #{i} is empty or not a string: {c!r}")
        todo = list(dict.fromkeys(c for c in captions if c not in self._text_cache))
        with self._inference():
            for s in range(0, len(todo), batch_size):
                chunk = todo[s:s + batch_size]
                tok = {k: v.to(self.device) for k, v in self.text_branch.tokenize(chunk).items()}
                emb = _l2(self.encode_text(tok["input_ids"], tok["attention_mask"], normalize=False))
                for c, e in zip(chunk, emb):
                    self._text_cache[c] = e
                    if len(self._text_cache) > _TEXT_CACHE_SIZE:
                        self._text_cache.popitem(last=False)
            if not captions:
                return np.zeros((0, self.config.embed_dim), dtype=np.float32)
            return np.stack([self._text_cache[c] for c in captions]).astype(np.float32)

    # -- audio -----------------------------------------------------------------------------------
    def embed_audio(
        self,
        items: Sequence[AudioItem] | AudioItem,
        sample_rate: int | None = None,
        batch_size: int = 16,
        progress: bool = False,
        center: str = "none",
        speakers: Sequence[Any] | None = None,
        reference: Sequence[AudioItem] | None = None,
    ) -> np.ndarray:
        """Audio items -> ``(N, D)`` float32 L2-normalised embeddings, in input order.

        Args:
            items: paths (any format soundfile reads) or waveforms (1-D, or 2-D with a channel axis).
            sample_rate: rate of array items (default 16 kHz); files carry their own.
            batch_size: windows per forward pass.
            progress: show a progress bar.
            center: ``"none"`` (default: an item's embedding does not depend on the other items),
                ``"collection"`` or ``"speaker"``: subtract the mean embedding of the items (of each
                speaker's items) and re-normalise (:mod:`paraspeechclap.centering`).
            speakers: one speaker id per item, for ``center="speaker"``.
            reference: clips to centre on instead (any mode; with ``"speaker"``, for speakers with a
                single item), e.g. neutral speech of the same speaker or room.

        Raises:
            AudioError: the first item (or reference clip) that cannot be embedded.
            InputError: a centring that cannot be done (see :func:`~paraspeechclap.centering.center_embeddings`).
        """
        res = self.embed_audio_report(items, sample_rate, batch_size, progress, skip_bad=False, center=center,
                                      speakers=speakers, reference=reference)
        return res.embeddings

    def embed_audio_report(
        self,
        items: Sequence[AudioItem] | AudioItem,
        sample_rate: int | None = None,
        batch_size: int = 16,
        progress: bool = False,
        skip_bad: bool = True,
        center: str = "none",
        speakers: Sequence[Any] | None = None,
        reference: Sequence[AudioItem] | None = None,
    ) -> AudioEmbeddings:
        """Like :meth:`embed_audio`, but with ``skip_bad`` bad items are reported and skipped (and
        left out of the centring means); ``centering`` of the result says what was done."""
        items = _as_items(items)
        check_mode(center)
        if center == "speaker":
            check_speakers(len(items), speakers)  # before the work of embedding
        head = head_for(center, self) == "centred"  # speaker centring scores with the centred head, if any
        res = self._embed_items(items, sample_rate, batch_size, progress, skip_bad, head)
        ref = None
        if reference is not None:
            try:
                ref = self._embed_items(_as_items(reference), sample_rate, batch_size, False, False, head)
            except AudioError as exc:
                raise AudioError(f"reference clip: {exc}") from None
        if (center != "none" or ref is not None) and len(res.indices):
            spk = [speakers[i] for i in res.indices] if speakers is not None else None
            res.embeddings, res.centering = self._centre(res.embeddings, res.centred_rows, center, spk,
                                                         *((None, None) if ref is None else
                                                           (ref.embeddings, ref.centred_rows)))
        return res

    def embed_pooled(self: "ParaSpeechCLAP", pooled: np.ndarray, center: str = "none",
                     speakers: Sequence[Any] | None = None, reference: np.ndarray | None = None) -> np.ndarray:
        """Backbone-pooled features (:meth:`pool_audio`) ``(N, H)`` -> ``(N, D)`` float32 normalised embeddings,
        centred as :meth:`embed_audio` centres them (``reference``: ``(R, H)`` pooled features of the reference
        clips). For work that pools clips once and scores them many ways (benchmarks, fitting a centred head)."""
        check_mode(center)
        head = head_for(center, self) == "centred"
        emb, rows = self._pooled_views(pooled, head)
        if center == "none" and reference is None:
            return emb
        ref_emb, ref_rows = (None, None) if reference is None else self._pooled_views(reference, head)
        return self._centre(emb, rows, center, speakers, ref_emb, ref_rows)[0]

    def _pooled_views(self: "ParaSpeechCLAP", pooled: np.ndarray, centred_rows: bool
                      ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(N, H)`` pooled -> the ``(N, D)`` plain embeddings and, with ``centred_rows``, the centred head's
        ``linear1`` rows (else None)."""
        x = torch.as_tensor(np.asarray(pooled, dtype=np.float64))
        with self._inference():
            return self._project_pooled(x), (self.centred_head_rows(x) if centred_rows else None)

    def _centre(self: "ParaSpeechCLAP", emb: np.ndarray, rows: np.ndarray | None, center: str,
                speakers: Sequence[Any] | None, ref_emb: np.ndarray | None, ref_rows: np.ndarray | None
                ) -> tuple[np.ndarray, Centering]:
        """Centre items as ``center`` asks: through the centred head when its ``linear1`` ``rows`` ``(N, D)`` are
        given (``ref_rows``: the reference clips'), else ``l2(x - mean(R))`` of the plain embeddings ``emb``
        (``ref_emb``); speaker means shrunk by the model's ``speaker_prior``. Returns ``(N, D)`` unit rows and what
        was done."""
        prior = self.config.speaker_prior
        if rows is None:
            return center_embeddings(emb, center, speakers, ref_emb, prior=prior)
        moved, done = center_embeddings(rows, center, speakers, ref_rows, normalize=False, prior=prior)
        return self.finish_centred_rows(moved), replace(done, head="centred")

    def pool_audio(self: "ParaSpeechCLAP", items: Sequence[AudioItem] | AudioItem, sample_rate: int | None = None,
                   batch_size: int = 16, progress: bool = False) -> np.ndarray:
        """Audio items -> ``(N, H)`` float32: the backbone-pooled features the projection heads take (long clips
        pooled over their windows as :meth:`embed_audio` pools them).

        Raises:
            AudioError: the first item that cannot be read (named).
        """
        items = _as_items(items)
        out = []
        bar = _progress(len(items), progress)
        with self._inference():
            for start in range(0, len(items), 64):
                wavs = [self._load(items[i], sample_rate, i) for i in range(start, min(start + 64, len(items)))]
                out.append(self._pool_waveforms(wavs, batch_size).float().numpy())
                bar.update(len(wavs))
        bar.close()
        return np.concatenate(out) if out else np.zeros((0, self.audio_branch.hidden_size), np.float32)

    def _embed_items(self: "ParaSpeechCLAP", items: list[AudioItem], sample_rate: int | None, batch_size: int,
                     progress: bool, skip_bad: bool, centred_rows: bool = False) -> AudioEmbeddings:
        """``centred_rows``: also keep each item's centred-head ``linear1`` output (``.centred_rows``)."""
        if batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {batch_size}")
        block = max(64, 8 * batch_size)  # bounds memory: at most this many decoded items at once
        out: list[np.ndarray] = []
        rows: list[np.ndarray] = []
        result = AudioEmbeddings(np.zeros((0, self.config.embed_dim), np.float32), [], [])
        bar = _progress(len(items), progress)
        with self._inference():
            for start in range(0, len(items), block):
                wavs: list[tuple[int, np.ndarray]] = []
                for i in range(start, min(start + block, len(items))):
                    try:
                        wavs.append((i, self._load(items[i], sample_rate, i)))
                    except AudioError as exc:
                        if not skip_bad:
                            raise
                        result.errors.append((i, str(exc)))
                if wavs:
                    pooled = self._pool_waveforms([w for _, w in wavs], batch_size)
                    out.append(self._project_pooled(pooled))
                    if centred_rows:
                        rows.append(self.centred_head_rows(pooled))
                    result.indices.extend(i for i, _ in wavs)
                bar.update(min(block, len(items) - start))
        bar.close()
        if out:
            result.embeddings = np.concatenate(out)
        if centred_rows:
            result.centred_rows = np.concatenate(rows) if rows else np.zeros((0, self.config.embed_dim))
        return result

    def _load(self: "ParaSpeechCLAP", item: AudioItem, sample_rate: int | None, index: int) -> np.ndarray:
        return load_audio(item, sample_rate, min_samples=self.audio_branch.min_samples,
                          name=describe_item(item, index))

    def _pool_waveforms(self: "ParaSpeechCLAP", wavs: list[np.ndarray], batch_size: int) -> torch.Tensor:
        """16 kHz waveforms -> ``(N, H)`` float64 backbone-pooled features.

        A clip longer than the encoder's window is cut into windows; if the encoder has frame
        statistics (``window_moments``) they are summed over the windows and pooled once, which is
        exactly pooling the concatenated frames, with the extras (level, F0) measured on the whole
        clip. Otherwise the windows' pooled features are averaged by frame count (exact for mean
        pooling). A clip of one window takes the plain path, so its result is the unwindowed one.
        """
        enc = self.audio_branch
        pieces = [split_windows(w, enc.window_samples) for w in wavs]
        exact = [i for i, p in enumerate(pieces) if len(p) > 1 and enc.has_window_moments]
        exact_set = set(exact)
        plain = [i for i in range(len(wavs)) if i not in exact_set]
        pooled = torch.zeros(len(wavs), enc.hidden_size, dtype=torch.float64)
        pooled[plain] = self._pool_windows([pieces[i] for i in plain], batch_size)
        if exact:
            pooled[exact] = self._pool_moments([wavs[i] for i in exact], [pieces[i] for i in exact], batch_size)
        return pooled

    def _project_pooled(self: "ParaSpeechCLAP", pooled: torch.Tensor) -> np.ndarray:
        """``(N, H)`` pooled -> ``(N, D)`` float32 normalised embeddings (moved by the stored offset, if any)."""
        emb = torch.nn.functional.normalize(self.project_audio(pooled.to(self.device, self._dtype),
                                                               normalize=False).float(), dim=-1)
        return self.offset_audio(emb).cpu().numpy()  # in float32, so norms are exactly 1 (see _l2)

    def centred_head_rows(self: "ParaSpeechCLAP", pooled: np.ndarray | torch.Tensor) -> np.ndarray:
        """``(N, H)`` pooled features (:meth:`pool_audio`) -> ``(N, D)`` float64: the centred head's ``linear1``
        output, the last point that is linear in the features, so centring there equals centring the features
        themselves. With :meth:`finish_centred_rows`, for centring of one's own (what ``center="speaker"`` does
        with each speaker's mean)."""
        if self.centred_projection is None:
            raise InputError("this model has no centred head (fit-centred-head)")
        x = pooled if isinstance(pooled, torch.Tensor) else torch.as_tensor(np.asarray(pooled, dtype=np.float64))
        with self._inference():  # callable on its own, as finish_centred_rows is
            return self.centred_projection.linear1(x.to(self.device, self._dtype)).double().cpu().numpy()

    def finish_centred_rows(self: "ParaSpeechCLAP", moved: np.ndarray) -> np.ndarray:
        """``(N, D)`` centred :meth:`centred_head_rows` -> ``(N, D)`` float32 normalised embeddings through the rest
        of the centred head (no stored offset: centring has already removed whatever the clips share)."""
        if self.centred_projection is None:
            raise InputError("this model has no centred head (fit-centred-head)")
        with self._inference():
            x = torch.as_tensor(moved).to(self.device, self._dtype)
            emb = torch.nn.functional.normalize(self.centred_projection.finish(x).float(), dim=-1)
        return emb.cpu().numpy()

    def _pool_windows(self: "ParaSpeechCLAP", pieces: list[list[np.ndarray]], batch_size: int) -> torch.Tensor:
        """Items' windows -> ``(N, H)`` float64: the frame-weighted mean of each item's pooled windows."""
        enc = self.audio_branch
        pooled = torch.zeros(len(pieces), enc.hidden_size, dtype=torch.float64)
        total = torch.zeros(len(pieces), dtype=torch.float64)
        for batch in _batches(_windows(enc, pieces), batch_size, enc.batch_mode, enc.max_batch_positions):
            inputs = _batch_inputs(batch, self.device, self._dtype)
            feats = enc(inputs.pop("features"), inputs.pop("lengths"), **inputs).double().cpu()  # (b, H)
            for w, f in zip(batch, feats):
                pooled[w.item] += w.weight * f
                total[w.item] += w.weight
        return pooled / total.clamp(min=1e-12)[:, None]

    def _pool_moments(self: "ParaSpeechCLAP", wavs: list[np.ndarray], pieces: list[list[np.ndarray]],
                      batch_size: int) -> torch.Tensor:
        """Long clips -> ``(N, H)`` float64 from their windows' summed frame statistics."""
        enc = self.audio_branch
        frozen = frozen_from_windows(enc, wavs, pieces, batch_size, self.device, self._dtype)
        return enc.forward_head(frozen).double().cpu()

    # -- scoring ---------------------------------------------------------------------------------
    def score(self, items: Sequence[AudioItem], captions: Sequence[str], sample_rate: int | None = None,
              batch_size: int = 16, **centering: Any) -> np.ndarray:
        """``(N, M)`` cosine similarities between audio items and captions; ``center``, ``speakers``
        and ``reference`` centre the audio embeddings as in :meth:`embed_audio`."""
        text = self.embed_text(captions)
        return self.embed_audio(items, sample_rate, batch_size, **centering) @ text.T

    def class_embeddings(self, candidates: Sequence[str], template: str = DEFAULT_TEMPLATE,
                         templates: Sequence[str] | None = None) -> np.ndarray:
        """``(C, D)`` normalised class embeddings: one template, or the renormalised mean over a
        prompt ensemble (``templates``), as CLIP's zero-shot classifier does."""
        candidates = _check_candidates(candidates)
        temps = list(templates) if templates else [template]
        for t in temps:
            if "{}" not in t:
                raise InputError(f"template must contain '{{}}' where the candidate goes: {t!r}")
        emb = np.stack([self.embed_text([t.format(c) for t in temps]).mean(axis=0) for c in candidates])
        return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)

    def classify(
        self,
        items: Sequence[AudioItem],
        candidates: Sequence[str],
        template: str = DEFAULT_TEMPLATE,
        templates: Sequence[str] | None = None,
        sample_rate: int | None = None,
        batch_size: int = 16,
        **centering: Any,
    ) -> list[list[tuple[str, float]]]:
        """Zero-shot classification: per item, ``(label, score)`` pairs best first.

        Args:
            candidates: class names inserted into ``template`` (official: ``"A person is speaking in
                a {} style."``).
            templates: a prompt ensemble; class embeddings are averaged over it (overrides ``template``).
            centering: ``center``, ``speakers``, ``reference`` as in :meth:`embed_audio`.
        """
        cls = self.class_embeddings(candidates, template, templates)
        return self.rank_classes(items, cls, candidates, sample_rate, batch_size, **centering)

    def rank_classes(self, items: Sequence[AudioItem], class_embeddings: np.ndarray, labels: Sequence[str],
                     sample_rate: int | None = None, batch_size: int = 16,
                     **centering: Any) -> list[list[tuple[str, float]]]:
        """Per item, ``(label, score)`` pairs best first against ready ``(C, D)`` class embeddings
        (e.g. an attribute set's prompt ensembles)."""
        sims = self.embed_audio(items, sample_rate, batch_size, **centering) @ class_embeddings.T  # (N, C)
        labels = list(labels)
        # stable sort: equal scores keep the candidate order (deterministic ties)
        return [[(labels[j], float(row[j])) for j in np.argsort(-row, kind="stable")] for row in sims]


def _as_items(items: Sequence[AudioItem] | AudioItem) -> list[AudioItem]:
    if isinstance(items, (str, np.ndarray)) or hasattr(items, "__fspath__"):
        return [items]  # type: ignore[list-item]
    return list(items)  # type: ignore[arg-type]


def _check_candidates(candidates: Sequence[str]) -> list[str]:
    cands = list(candidates)
    if not cands:
        raise InputError("no candidates given")
    for c in cands:
        if not isinstance(c, str) or not c.strip():
            raise InputError(f"candidate is empty or not a string: {c!r}")
    dup = sorted({c for c in cands if cands.count(c) > 1})
    if dup:
        raise InputError(f"duplicate candidates: {', '.join(dup)}")
    return cands


def _l2(emb: torch.Tensor) -> np.ndarray:
    """Normalise in float32 (a bf16 model's outputs are cast first, so norms are exactly 1)."""
    return torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy()


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    # disable=None lets tqdm hide the bar when stderr is not a terminal
    return tqdm(total=total, disable=True if (not enabled or total <= 1) else None, unit="clip",
                desc="embedding", leave=False)
