"""Embedding on an executor: ``embed --executor ray`` and ``index --executor ray``.

:class:`ExecutorEmbedder` runs ``annotate``'s costly stage behind the model's ``embed_audio_report``
interface, without the DSP measurements: a Ray Data pipeline of decode tasks, an embedding actor pool
and write tasks (:mod:`.ray_executor`), or this process (``local``). ``embed`` and ``index`` use it in
place of the model, so their outputs (the ``.npy`` file and its ids; the index and its incremental
updates) are written by the same code whatever the executor. The stage shards go to a temporary folder
that every node sees (``work_dir``; on a cluster, shared storage) and are read back in input order.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AudioError, InputError
from ..storage import is_uri

#: clips per stage shard (the unit a worker takes)
SHARD_SIZE = 256


class ExecutorEmbedder:
    """A model's audio embedding run by an executor (:data:`.executors.EXECUTORS`).

    Args:
        model: the loaded model (text embedding, reference clips and the local executor use it).
        model_spec: ``load_model`` keywords that load the same model in a worker process.
        executor: ``"local"`` or ``"ray"``.
        options: the executor's settings (``ray``: ``address``, ``workers``, ``threads``).
        work_dir: where the temporary stage shards go (default: the system's temporary folder; on a
            cluster, a folder on storage every node sees).
        shard_size: clips per shard.
    """

    def __init__(self, model: Any, model_spec: dict[str, Any], executor: str = "ray",
                 options: dict[str, Any] | None = None, work_dir: str | Path | None = None,
                 shard_size: int = SHARD_SIZE) -> None:
        from .executors import get_executor

        self.run = get_executor(executor)  # an unknown name or a missing extra fails here, before any work
        self.model, self.model_spec, self.executor = model, model_spec, executor
        self.options, self.work_dir, self.shard_size = dict(options or {}), work_dir, shard_size
        self.stats: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:  # model_id, checksum, precision, config, audio_branch ...
        return getattr(self.model, name)

    def embed_text(self, captions: Sequence[str]) -> np.ndarray:
        return self.model.embed_text(captions)

    def embed_audio_report(self, items: Sequence[Any], sample_rate: int | None = None, batch_size: int = 16,
                           progress: bool = False, skip_bad: bool = True, center: str = "none",
                           speakers: Sequence[Any] | None = None, reference: Sequence[Any] | None = None) -> Any:
        """As :meth:`paraspeechclap.model.ParaSpeechCLAP.embed_audio_report`, for audio files.

        Raises:
            InputError: an item that is not a file path or URI (workers read files), or a centring that cannot be done.
            AudioError: the first unreadable file, without ``skip_bad``.
        """
        from ..centering import center_embeddings, check_mode, check_speakers
        from ..inference import AudioEmbeddings

        check_mode(center)
        if center == "speaker":
            check_speakers(len(items), speakers)
        if sample_rate is not None or any(isinstance(it, np.ndarray) for it in items):
            raise InputError(f"--executor {self.executor} embeds audio files, not arrays")
        emb, indices, errors = self._embed_files([str(it) for it in items], batch_size, progress)
        if errors and not skip_bad:
            raise AudioError(errors[0][1])
        res = AudioEmbeddings(emb, indices, errors)
        ref = self.model.embed_audio(list(reference), batch_size=batch_size) if reference is not None else None
        if (center != "none" or ref is not None) and indices:
            spk = [speakers[i] for i in indices] if speakers is not None else None
            res.embeddings, res.centering = center_embeddings(res.embeddings, center, spk, ref,
                                                              prior=self.model.config.speaker_prior)
        return res

    def _embed_files(self, paths: list[str], batch_size: int, progress: bool
                     ) -> tuple[np.ndarray, list[int], list[tuple[int, str]]]:
        """``(K, D)`` embeddings of the readable files, their indices, and ``(index, error)`` of the rest."""
        import pyarrow.parquet as pq

        from .executors import StageJob
        from .inputs import InputItem
        from .stage import shard_path

        dim = int(self.model.config.embed_dim)
        if not paths:
            return np.zeros((0, dim), np.float32), [], []
        items = [InputItem(i, p if is_uri(p) else Path(p).resolve(), "input") for i, p in enumerate(paths)]
        shards = [items[s:s + self.shard_size] for s in range(0, len(items), self.shard_size)]
        with tempfile.TemporaryDirectory(prefix="paraspeechclap-embed-", dir=self.work_dir) as work:
            files = [shard_path(Path(work), k) for k in range(len(shards))]
            job = StageJob(self.model, self.model_spec, shards, list(range(len(shards))), files, batch_size,
                           progress, self.options, measured=False)
            self.stats = self.run(job)
            rows = [r for f in files for r in pq.read_table(f, columns=["index", "error", "embedding"]).to_pylist()]
        rows.sort(key=lambda r: r["index"])
        good = [r for r in rows if r["error"] is None]
        emb = np.array([r["embedding"] for r in good], dtype=np.float32).reshape(len(good), dim)
        return emb, [r["index"] for r in good], [(r["index"], r["error"]) for r in rows if r["error"] is not None]
