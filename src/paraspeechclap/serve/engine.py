"""The model behind the endpoints: batched clip embeddings, cached prompt embeddings, attribute sets.

All model work runs on one worker thread (the model and its caches are not shared between threads):
clip embeddings through the :class:`~.batcher.DynamicBatcher`, prompt and class embeddings directly.
Scores are cosines of unit embeddings; an attribute set's probabilities are ``softmax(logit_scale *
cosine / T)`` with the set's calibrated temperature ``T`` (1 without a calibration), as ``annotate``
computes them.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..audio.io import SAMPLE_RATE
from .batcher import DynamicBatcher
from .inputs import HTTPProblem
from .metrics import Metrics
from .settings import ServeSettings

#: prompt embeddings kept (GRPO groups and best-of-N share prompts)
PROMPT_CACHE_SIZE = 8192


class Engine:
    """A loaded model ready to serve.

    Args:
        model: the :class:`~paraspeechclap.model.ParaSpeechCLAP`.
        settings: limits and batching.
        default_sets: attribute sets ``/v1/classify`` and ``/v1/reward`` use when a request names none.
        calibration: a :class:`~paraspeechclap.calibration.Calibration` for this model (uncentred), or None.
        index: a loaded :class:`~paraspeechclap.search.index.EmbeddingIndex` built with this model, or None.
    """

    def __init__(self, model: Any, settings: ServeSettings, default_sets: Sequence[str],
                 calibration: Any | None = None, index: Any | None = None) -> None:
        from ..calibration import model_logit_scale

        self.model = model
        self.settings = settings
        self.default_sets = list(default_sets)
        self.calibration = calibration
        self.index = index
        self.metrics = Metrics()
        self.logit_scale = model_logit_scale(model)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paraspeechclap-model")
        self.batcher = DynamicBatcher(self._embed_batch, settings.batch_size, settings.max_wait_ms, self.executor,
                                      on_batch=self.metrics.on_batch)
        self._prompts: OrderedDict[str, np.ndarray] = OrderedDict()
        self._sets: dict[str, Any] = {}

    # -- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        self.batcher.start()
        if not self.settings.skip_warmup:  # the first request should not pay for lazy initialisation
            t = np.arange(SAMPLE_RATE, dtype=np.float32) / SAMPLE_RATE
            await self.embed_clips([0.1 * np.sin(2 * np.pi * 220 * t).astype(np.float32)])
            await self.embed_texts(["A person is speaking."])

    async def stop(self) -> None:
        await self.batcher.stop()
        self.executor.shutdown(wait=True)

    def info(self) -> dict[str, Any]:
        """What every response carries: which model, which weights, which precision."""
        return {"id": self.model.model_id, "checksum": self.model.checksum, "precision": self.model.precision}

    # -- embeddings ----------------------------------------------------------------------------------
    def _embed_batch(self, wavs: list[np.ndarray]) -> np.ndarray:
        """``B`` 16 kHz waveforms -> ``(B, D)`` (on the model thread; ``B <= batch_size``: one pass)."""
        return self.model.embed_audio(wavs, sample_rate=SAMPLE_RATE, batch_size=self.settings.batch_size)

    async def embed_clips(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        """``N`` waveforms -> ``(N, D)`` unit embeddings, batched with other requests' clips."""
        if not wavs:
            return np.zeros((0, self.model.config.embed_dim), np.float32)
        return np.stack(await self.batcher.submit(list(wavs)))

    async def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """``M`` captions -> ``(M, D)`` unit embeddings; repeated prompts come from the cache."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._prompts))
        hits = sum(1 for t in texts if t in self._prompts)
        self.metrics.prompt_cache.labels("hit").inc(hits)
        self.metrics.prompt_cache.labels("miss").inc(len(texts) - hits)
        if missing:
            loop = asyncio.get_running_loop()
            emb = await loop.run_in_executor(self.executor, self.model.embed_text, missing)
            for t, e in zip(missing, emb):
                self._prompts[t] = e
                self._prompts.move_to_end(t)
            while len(self._prompts) > PROMPT_CACHE_SIZE:
                self._prompts.popitem(last=False)
        if not texts:
            return np.zeros((0, self.model.config.embed_dim), np.float32)
        out = []
        for t in texts:
            self._prompts.move_to_end(t)
            out.append(self._prompts[t])
        return np.stack(out)

    async def class_embeddings(self, candidates: Sequence[str], template: str) -> np.ndarray:
        """``(C, D)`` class embeddings of ``template`` filled with each candidate, as ``classify`` makes them
        (the model checks the template and refuses duplicates: an ``InputError``, answered 400)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self.model.class_embeddings, list(candidates), template)

    # -- attribute sets ------------------------------------------------------------------------------
    def check_sets(self, names: Sequence[str]) -> list[str]:
        """The names, checked against the registry (404 for an unknown one)."""
        from ..data.attributes import list_attribute_sets

        known = set(list_attribute_sets())
        for name in names:
            if name not in known:
                raise HTTPProblem(404, f"unknown attribute set {name!r}; known: {', '.join(sorted(known))}")
        return list(dict.fromkeys(names))

    async def set_scorer(self, name: str) -> Any:
        """The set's class embeddings and temperature (:class:`~paraspeechclap.annotate.labels.SetScorer`),
        built once on the model thread."""
        if name not in self._sets:
            from ..annotate.labels import build_scorers

            cal = self.calibration if self.calibration is not None and name in self.calibration.temperatures else None
            loop = asyncio.get_running_loop()
            scorer = (await loop.run_in_executor(self.executor, build_scorers, self.model, [name], cal))[0]
            # a set the calibration kept at T = 1 (too few held-out errors to fit) is not calibrated
            scorer.calibrated = cal is not None and bool(cal.metrics.get(name, {}).get("fitted", True))
            self._sets[name] = scorer
        return self._sets[name]

    async def set_results(self, audio: np.ndarray, names: Sequence[str]) -> list[dict[str, Any]]:
        """Per clip, per set: labels best first with cosine and probability, and the top label."""
        out: list[dict[str, Any]] = [{} for _ in range(audio.shape[0])]
        for name in names:
            scorer = await self.set_scorer(name)
            cos = audio.astype(np.float64) @ scorer.classes.T.astype(np.float64)  # (N, C)
            probs = scorer.probabilities(audio, self.logit_scale)
            for i in range(audio.shape[0]):
                out[i][name] = ranked_labels(scorer.aset.candidates, cos[i], probs[i], scorer.calibrated,
                                             scorer.temperature)
        return out

    def softmax(self, cos: np.ndarray) -> np.ndarray:
        """Uncalibrated zero-shot probabilities of ``(N, C)`` cosines."""
        from ..calibration import apply

        return apply(self.logit_scale * np.asarray(cos, dtype=np.float64), 1.0)


def ranked_labels(candidates: Sequence[str], cos: np.ndarray, probs: np.ndarray, calibrated: bool,
                  temperature: float) -> dict[str, Any]:
    """One clip's result for one set: ``labels`` best first (stable on ties), ``top``, calibration."""
    order = np.argsort(-cos, kind="stable")
    labels = [{"label": candidates[j], "score": float(cos[j]), "probability": float(probs[j])} for j in order]
    return {"top": labels[0]["label"], "labels": labels, "calibrated": calibrated, "temperature": temperature}
