"""Style-search speed: index build (embedding EXCLUDED), incremental rebuild, load, query latency.

Embedding time is excluded on purpose: it depends only on the model (see ``benchmarks/inference.py``
for clips/s) and would hide the index's own cost. A fake embedder returns precomputed synthetic unit
vectors, so the build numbers measure content hashing, bookkeeping and the atomic write of the
index files. Query latency is measured on synthetic L2-normalised embeddings, for the exact numpy
backend and (when installed) FAISS ``IndexFlatIP``; building the FAISS index (a copy of the
embeddings, done once per ``paraspeechclap search`` call) is reported separately from query latency.

    python benchmarks/search.py                                   # 10k and 100k clips, D=768
    python benchmarks/search.py                 # -> benchmarks/results/search.json
    python benchmarks/search.py --sizes 10000 --dim 512 --json /tmp/search.json
"""

from __future__ import annotations

import argparse
import sys
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, json_path, write_results  # noqa: E402

import numpy as np

from paraspeechclap.search.backends import create_searcher
from paraspeechclap.search.index import IndexItem, build_index, file_hash, load_index


class SyntheticEmbedder:
    """Returns row ``i`` of a fixed random matrix for the i-th file it is given (no model)."""

    model_id = "synthetic"
    checksum = "synthetic-1"

    def __init__(self, n: int, dim: int, seed: int = 0):
        emb = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
        self.emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        self.next = 0

    def embed_audio_report(self, items, sample_rate=None, batch_size=16, progress=False, skip_bad=True):
        rows = self.emb[self.next:self.next + len(items)]
        self.next += len(items)
        return SimpleNamespace(embeddings=rows, indices=list(range(len(items))), errors=[])


def _make_files(root: Path, n: int, nbytes: int) -> list[IndexItem]:
    rng = np.random.default_rng(1)
    items = []
    for i in range(n):
        p = root / f"d{i // 1000:04d}" / f"clip{i:06d}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.bytes(nbytes))
        items.append(IndexItem(p))
    return items


def bench_build(n: int, dim: int, nbytes: int, workdir: Path) -> dict:
    """Fresh build, then a no-op rebuild (everything reused), then load."""
    root, out = workdir / f"files{n}", workdir / f"index{n}"
    items = _make_files(root, n, nbytes)
    t = time.perf_counter()
    stats = build_index(SyntheticEmbedder(n, dim), items, out, root, block_size=4096, commit_every_s=1e9)
    fresh = time.perf_counter() - t
    t = time.perf_counter()
    again = build_index(SyntheticEmbedder(n, dim), items, out, root)
    noop = time.perf_counter() - t
    assert again.embedded == 0 and again.reused == n
    t = time.perf_counter()
    index = load_index(out, mmap=True)
    load_s = time.perf_counter() - t
    size = sum(f.stat().st_size for f in out.iterdir())
    shutil.rmtree(root)
    return {"clips": n, "dim": dim, "file_bytes": nbytes, "build_s": fresh, "build_files_per_s": n / fresh,
            "hash_s": stats.hash_s, "write_s": stats.write_s, "noop_rebuild_s": noop, "load_mmap_s": load_s,
            "index_mb": size / 2**20, "rows_loaded": len(index.items)}


def bench_query(n: int, dim: int, backend: str, repeats: int, batch: int) -> dict:
    rng = np.random.default_rng(2)
    emb = rng.standard_normal((n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    queries = rng.standard_normal((max(repeats, batch), dim)).astype(np.float32)
    t = time.perf_counter()
    searcher = create_searcher(backend, emb)
    build_s = time.perf_counter() - t
    searcher.search(queries[:1], 10)  # warm-up (BLAS threads)
    single = []
    for q in range(repeats):
        t = time.perf_counter()
        searcher.search(queries[q:q + 1], 10)
        single.append(time.perf_counter() - t)
    t = time.perf_counter()
    searcher.search(queries[:batch], 10)
    batched = time.perf_counter() - t
    return {"clips": n, "dim": dim, "backend": backend, "top_k": 10, "searcher_build_ms": 1e3 * build_s,
            "single_query_ms_median": 1e3 * statistics.median(single),
            "single_query_ms_p90": 1e3 * sorted(single)[int(0.9 * (len(single) - 1))],
            f"batch{batch}_ms_per_query": 1e3 * batched / batch}


def _faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--dim", type=int, default=768, help="embedding width (official model: 768)")
    ap.add_argument("--file-bytes", type=int, default=4096,
                    help="size of each synthetic file for the build (hashing cost scales with it)")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--batch", type=int, default=100)
    add_json_arg(ap, "search.json")
    args = ap.parse_args()

    backends = ["numpy"] + (["faiss"] if _faiss_available() else [])
    workdir = Path(tempfile.mkdtemp(prefix="pscl-search-bench-"))
    try:
        with tempfile.NamedTemporaryFile(dir=workdir, delete=False) as f:
            f.write(os.urandom(64 * 2**20))
        t = time.perf_counter()
        file_hash(f.name)
        hash_mb_s = 64 / (time.perf_counter() - t)
        builds = [bench_build(n, args.dim, args.file_bytes, workdir) for n in args.sizes]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    queries = [bench_query(n, args.dim, b, args.repeats, args.batch) for n in args.sizes for b in backends]

    print(f"content hashing (BLAKE2b-128): {hash_mb_s:.0f} MB/s on one 64 MB file")
    print("\nindex build, embedding EXCLUDED (synthetic vectors):")
    print(f"{'clips':>8} {'file KB':>8} {'build s':>8} {'files/s':>9} {'hash s':>7} {'write s':>8} "
          f"{'no-op s':>8} {'load ms':>8} {'MB':>7}")
    for b in builds:
        print(f"{b['clips']:>8} {b['file_bytes'] / 1024:>8.1f} {b['build_s']:>8.2f} {b['build_files_per_s']:>9.0f} "
              f"{b['hash_s']:>7.2f} {b['write_s']:>8.2f} {b['noop_rebuild_s']:>8.2f} {1e3 * b['load_mmap_s']:>8.1f} "
              f"{b['index_mb']:>7.1f}")
    print(f"\nquery latency, top-10, D={args.dim}:")
    print(f"{'clips':>8} {'backend':>8} {'build ms':>9} {'1 query ms (median)':>20} {'p90 ms':>8} "
          f"{f'ms/query in {args.batch}':>16}")
    for q in queries:
        print(f"{q['clips']:>8} {q['backend']:>8} {q['searcher_build_ms']:>9.1f} {q['single_query_ms_median']:>20.2f} "
              f"{q['single_query_ms_p90']:>8.2f} {q[f'batch{args.batch}_ms_per_query']:>16.3f}")

    result = {"embedding": "excluded (synthetic vectors)", "hash_mb_per_s": hash_mb_s, "build": builds,
              "query": queries, "threads": os.cpu_count()}
    write_results(json_path(args), result)


if __name__ == "__main__":
    main()
