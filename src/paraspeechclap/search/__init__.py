"""Style search: an incremental on-disk embedding index of audio files and top-k caption queries.

``from paraspeechclap.search import build_index, load_index`` (see :mod:`.index`); search backends
(numpy, optional FAISS exact and approximate) are in :mod:`.backends`, the approximate (ANN) indexes
persisted beside the embeddings in :mod:`.ann`.
"""

from .ann import ANN_CHOICES, ANN_KINDS, AnnIndex, build_ann
from .backends import BACKEND_CHOICES, BACKENDS, create_searcher, numpy_search
from .index import (
    AUDIO_EXTENSIONS,
    BuildStats,
    EmbeddingIndex,
    IndexItem,
    build_index,
    file_hash,
    list_audio_files,
    load_index,
    update_ann,
)

__all__ = [
    "ANN_CHOICES",
    "ANN_KINDS",
    "AUDIO_EXTENSIONS",
    "BACKENDS",
    "BACKEND_CHOICES",
    "AnnIndex",
    "BuildStats",
    "EmbeddingIndex",
    "IndexItem",
    "build_ann",
    "build_index",
    "create_searcher",
    "file_hash",
    "list_audio_files",
    "load_index",
    "numpy_search",
    "update_ann",
]
