"""Top-k inner-product search over unit-norm embeddings.

Two interchangeable exact backends, registered by name in :data:`BACKENDS`. A searcher is built
once from the ``(N, D)`` embeddings and then answers any number of queries:

* ``"numpy"`` (default): brute force, ``scores = queries @ embeddings.T`` in blocks of queries
  (bounded memory for many queries). Ties go to the lower index. Nothing to build.
* ``"faiss"``: ``IndexFlatIP`` from the optional ``faiss`` extra
  (``pip install 'paraspeechclap[faiss]'``). Building copies the embeddings into FAISS (costly for
  one query); after that, batches of queries run on FAISS's multi-threaded BLAS kernels. Same
  results as numpy up to float rounding (ties may be ordered differently).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..errors import InputError

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


class NumpySearcher:
    """Exact search with :func:`numpy_search` (keeps a reference to the embeddings)."""

    def __init__(self, embeddings: np.ndarray) -> None:
        self.embeddings = embeddings

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return numpy_search(self.embeddings, queries, k)


class FaissSearcher:
    """Exact search with a FAISS ``IndexFlatIP`` built from the embeddings."""

    def __init__(self, embeddings: np.ndarray) -> None:
        faiss = require_faiss()
        self.n = embeddings.shape[0]
        self.index = faiss.IndexFlatIP(embeddings.shape[1])
        self.index.add(np.ascontiguousarray(embeddings, dtype=np.float32))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, idx = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, self.n))
        return idx.astype(np.int64), scores.astype(np.float32)


def require_faiss() -> Any:
    """Import faiss or raise an :class:`InputError` naming the extra to install."""
    try:
        import faiss
    except ImportError:
        raise InputError(
            "the 'faiss' search backend needs FAISS: pip install 'paraspeechclap[faiss]' (or faiss-cpu)"
        ) from None
    return faiss


BACKENDS: dict[str, type] = {"numpy": NumpySearcher, "faiss": FaissSearcher}


def create_searcher(name: str, embeddings: np.ndarray) -> Searcher:
    """Build the searcher registered under ``name`` (see :data:`BACKENDS`) over ``(N, D)`` embeddings.

    Raises:
        InputError: unknown backend, or FAISS requested but not installed.
    """
    try:
        cls = BACKENDS[name]
    except KeyError:
        raise InputError(f"unknown search backend {name!r}; choose one of {', '.join(BACKENDS)}") from None
    return cls(embeddings)
