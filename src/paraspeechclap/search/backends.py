"""Top-k inner-product search over unit-norm embeddings.

Three interchangeable backends, registered by name in :data:`BACKENDS`. A searcher is built once
(from the ``(N, D)`` embeddings, or from an index with ``from_index``) and then answers any number
of queries:

* ``"numpy"``: brute force, ``scores = queries @ embeddings.T`` in blocks of queries
  (bounded memory for many queries). Ties go to the lower index. Nothing to build.
* ``"faiss"``: ``IndexFlatIP`` from the optional ``faiss`` extra
  (``pip install 'paraspeechclap[faiss]'``). Building copies the embeddings into FAISS (costly for
  one query); after that, batches of queries run on FAISS's multi-threaded BLAS kernels. Same
  results as numpy up to float rounding (ties may be ordered differently).
* ``"ann"``: approximate, with a FAISS IVF or HNSW index (:mod:`.ann`). From an index it uses the
  one persisted beside the embeddings (``index --ann``); from bare embeddings it builds one in memory.
  Scores are exact inner products; some true top-k rows may be missed (recall < 1).

``"auto"`` is not a backend but a choice resolved per index (:func:`resolve_backend`): ``ann`` when
the index has a persisted ANN index and FAISS is installed, else ``numpy``.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np

from ..errors import InputError
from .ann import ANN_KINDS, AnnIndex, build_ann, faiss_available, require_faiss

logger = logging.getLogger(__name__)

_MAX_SCORES = 1 << 24  # scores held at once (64 MiB of float32): queries are processed in blocks


def _topk_row(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of one score row, sorted by descending score, then ascending index."""
    kth = np.partition(scores, scores.size - k)[scores.size - k]
    # Keep every score tied with the k-th best so the lower-index rule decides, not argpartition.
    sel = np.flatnonzero(scores >= kth)
    order = np.lexsort((sel, -scores[sel]))[:k]  # last key is primary
    return sel[order], scores[sel[order]]


def numpy_search(embeddings: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product with numpy, ties broken by the lower index.

    Args:
        embeddings: ``(N, D)`` index embeddings (may be a memory map).
        queries: ``(Q, D)`` query embeddings.
        k: number of results per query (>= 1).

    Returns:
        ``(indices, scores)``, int64 and float32, both ``(Q, min(k, N))``.
    """
    n = embeddings.shape[0]
    k = min(k, n)
    out_i = np.empty((queries.shape[0], k), dtype=np.int64)
    out_s = np.empty((queries.shape[0], k), dtype=np.float32)
    step = max(1, _MAX_SCORES // max(n, 1))
    for start in range(0, queries.shape[0], step):
        scores = np.asarray(queries[start : start + step], dtype=np.float32) @ np.asarray(embeddings).T
        for q, row in enumerate(scores):
            out_i[start + q], out_s[start + q] = _topk_row(row, k)
    return out_i, out_s


class Searcher(Protocol):
    """A search structure over fixed embeddings."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(Q, D)`` queries -> ``(indices, scores)``, both ``(Q, min(k, N))``, best first."""
        ...


class _Exact:
    """``from_index`` of the exact backends: they search the index's embeddings as they are."""

    @classmethod
    def from_index(cls, index: Any, **knobs: int | None) -> Searcher:
        """A searcher over ``index.embeddings``; ANN knobs (``nprobe``, ``ef_search``) do not apply."""
        return cls(index.embeddings)


class NumpySearcher(_Exact):
    """Exact search with :func:`numpy_search` (keeps a reference to the embeddings)."""

    def __init__(self, embeddings: np.ndarray) -> None:
        self.embeddings = embeddings

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return numpy_search(self.embeddings, queries, k)


class FaissSearcher(_Exact):
    """Exact search with a FAISS ``IndexFlatIP`` built from the embeddings."""

    def __init__(self, embeddings: np.ndarray) -> None:
        faiss = require_faiss()
        self.n = embeddings.shape[0]
        self.index = faiss.IndexFlatIP(embeddings.shape[1])
        self.index.add(np.ascontiguousarray(embeddings, dtype=np.float32))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, idx = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, self.n))
        return idx.astype(np.int64), scores.astype(np.float32)


class AnnSearcher:
    """Approximate search with an :class:`~.ann.AnnIndex`.

    Args:
        embeddings: ``(N, D)`` rows; used only to build an in-memory structure when ``ann`` is None.
        kind: what to build then (``ivf`` or ``hnsw``).
        ann: an existing structure over these rows (e.g. the persisted one of an index).
        nprobe, ef_search: override the stored search-time knob of an IVF / HNSW structure (the
            other kind's knob is ignored).
    """

    def __init__(self, embeddings: np.ndarray | None = None, kind: str = "ivf", ann: AnnIndex | None = None,
                 nprobe: int | None = None, ef_search: int | None = None) -> None:
        if ann is None:
            if kind not in ANN_KINDS:
                raise InputError(f"unknown ANN kind {kind!r}; choose one of {', '.join(ANN_KINDS)}")
            ann = build_ann(embeddings, kind)
        self.ann = ann
        self.knob = {"nprobe": nprobe, "ef_search": ef_search}[ANN_KINDS[ann.kind].knob]

    @classmethod
    def from_index(cls, index: Any, **knobs: int | None) -> AnnSearcher:
        """A searcher over the ANN index persisted in ``index`` (checked against its embeddings)."""
        return cls(ann=index.ann(), **knobs)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.ann.search(queries, k, self.knob)


BACKENDS: dict[str, type] = {"numpy": NumpySearcher, "faiss": FaissSearcher, "ann": AnnSearcher}
#: ``search --backend`` choices: the registered backends and ``auto``.
BACKEND_CHOICES = ("auto", *BACKENDS)


def backend_class(name: str) -> type:
    """The searcher class registered under ``name``; a one-line :class:`InputError` when there is none."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise InputError(f"unknown search backend {name!r}; choose one of {', '.join(BACKENDS)}") from None


def create_searcher(name: str, embeddings: np.ndarray, **options: Any) -> Searcher:
    """Build the searcher registered under ``name`` (see :data:`BACKENDS`) over ``(N, D)`` embeddings.

    ``options`` go to the class (for ``ann``: ``kind``, ``nprobe``, ``ef_search``).

    Raises:
        InputError: unknown backend, or FAISS requested but not installed.
    """
    return backend_class(name)(embeddings, **options)


def resolve_backend(name: str, has_ann: bool, where: str = "the index") -> str:
    """The backend ``name`` stands for over an index (``where``, for messages) that has (``has_ann``) a
    persisted ANN index or not.

    ``auto`` -> ``ann`` when there is one and FAISS is installed (else ``numpy``, with a warning when the
    ANN index goes unused); an explicit ``ann`` without one is a one-line :class:`InputError`.
    """
    if name == "auto":
        if has_ann and not faiss_available():
            logger.warning("%s has an ANN index but FAISS is not installed (pip install 'paraspeechclap[faiss]'): "
                           "searching exactly with numpy", where)
        return "ann" if has_ann and faiss_available() else "numpy"
    backend_class(name)
    if name == "ann" and not has_ann:
        raise InputError(f"{where}: no ANN index; build one with 'paraspeechclap index ... --ann ivf' (or hnsw), "
                         "or search with --backend numpy")
    return name
