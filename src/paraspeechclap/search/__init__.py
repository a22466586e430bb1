"""Style search: an incremental on-disk embedding index of audio files and top-k caption queries.

``from paraspeechclap.search import build_index, load_index`` (see :mod:`.index`); search backends
(numpy, optional FAISS) are in :mod:`.backends`.
"""

from .backends import BACKENDS, create_searcher, numpy_search
from .index import (
    AUDIO_EXTENSIONS,
    BuildStats,
    EmbeddingIndex,
    IndexItem,
    build_index,
    file_hash,
    list_audio_files,
    load_index,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "BACKENDS",
    "BuildStats",
    "EmbeddingIndex",
    "IndexItem",
    "build_index",
    "create_searcher",
    "file_hash",
    "list_audio_files",
    "load_index",
    "numpy_search",
]
