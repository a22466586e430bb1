"""Style-search speed: index build (embedding EXCLUDED), incremental rebuild, load, query latency, ANN.

Embedding time is excluded on purpose: it depends only on the model (see ``benchmarks/inference.py``
for clips/s) and would hide the index's own cost. A fake embedder returns precomputed synthetic unit
vectors, so the build numbers measure content hashing, bookkeeping and the atomic write of the
index files. Query latency is measured on synthetic L2-normalised embeddings, for the exact numpy
backend and (when installed) FAISS ``IndexFlatIP``; building the FAISS index (a copy of the
embeddings, done once per ``paraspeechclap search`` call) is reported separately from query latency.

Approximate search (``index --ann``, ``search --backend ann``) is measured on ``--ann-size`` clustered
synthetic unit vectors (``paraspeechclap.testing.clustered_unit_vectors``: 4096 Gaussian clusters
around 64 super-centres, log-normal sizes, queries drawn fresh from the same mixture): build time of
each ANN kind, its persisted file, query latency (one query at a time and batches, 1 and 2 threads)
and recall@10 against the exact numpy top-10, with the speed-up over the faster exact backend
(numpy or FAISS IndexFlatIP) at the same thread count in the same run, and a sweep of the
search-time knob (nprobe, ef_search).

    python benchmarks/search.py                 # 10k and 100k clips, D=768; ANN at 1M, D=256 (~10 min)
    python benchmarks/search.py --sizes 10000 --dim 512 --json /tmp/search.json
    python benchmarks/search.py --sizes 10000 --ann-size 20000 --json /tmp/s.json   # quick
    python benchmarks/search.py --ann-size 0    # no ANN part
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
from common import add_json_arg, json_path, write_results

from paraspeechclap.search.ann import (
    ANN_KINDS,
    build_ann,
    embeddings_identity,
    load_ann,
    write_ann,
)
from paraspeechclap.search.backends import AnnSearcher, create_searcher, numpy_search
from paraspeechclap.search.index import IndexItem, build_index, file_hash, load_index
from paraspeechclap.testing import clustered_unit_vectors


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
    stats = build_index(SyntheticEmbedder(n, dim), items, out, root, block_size=4096, commit_every_s=1e9,
                        ann="none")  # the exact index alone; ANN builds are measured by bench_ann
    fresh = time.perf_counter() - t
    t = time.perf_counter()
    again = build_index(SyntheticEmbedder(n, dim), items, out, root, ann="none")
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
    lat = _latency(searcher, queries, repeats, batch)
    return {"clips": n, "dim": dim, "backend": backend, "top_k": 10, "searcher_build_ms": 1e3 * build_s,
            "single_query_ms_median": lat["single_query_ms_median"], "single_query_ms_p90": lat["single_query_ms_p90"],
            f"batch{batch}_ms_per_query": lat["batch_ms_per_query"]}


# ---------------------------------------------------------------- approximate search


def _threads(n: int):
    """Limit BLAS (numpy's and FAISS's) and OpenMP (FAISS) to ``n`` threads inside the block."""
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(n)
    return threadpool_limits(limits=n)


def _latency(searcher, queries: np.ndarray, repeats: int, batch: int) -> dict:
    """Median and p90 of one query at a time (``repeats`` queries) and ms/query of one batch."""
    searcher.search(queries[:1], 10)  # warm-up (threads, first page faults)
    single = []
    for q in range(repeats):
        t = time.perf_counter()
        searcher.search(queries[q:q + 1], 10)
        single.append(time.perf_counter() - t)
    t = time.perf_counter()
    searcher.search(queries[:batch], 10)
    batched = time.perf_counter() - t
    return {"single_query_ms_median": 1e3 * statistics.median(single),
            "single_query_ms_p90": 1e3 * sorted(single)[int(0.9 * (len(single) - 1))],
            "batch_ms_per_query": 1e3 * batched / batch}


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of the exact top-k found (``-1`` padding never matches)."""
    return float(np.mean([len(set(f.tolist()) & set(e.tolist())) / e.size for f, e in zip(found, exact)]))


def ann_exact(emb: np.ndarray, queries: np.ndarray, threads: list[int], repeats: int, batch: int) -> list[dict]:
    """Latency of the exact backends (numpy, FAISS flat) at each thread count."""
    rows = []
    for backend in ["numpy"] + (["faiss"] if _faiss_available() else []):
        t = time.perf_counter()
        searcher = create_searcher(backend, emb)
        build_ms = 1e3 * (time.perf_counter() - t)
        for n in threads:
            with _threads(n):
                rows.append({"backend": backend, "threads": n, "searcher_build_ms": build_ms,
                             **_latency(searcher, queries, repeats, batch)})
        del searcher
    return rows


def _best_exact(exact: list[dict], threads: int, key: str) -> dict:
    best = min((r for r in exact if r["threads"] == threads), key=lambda r: r[key])
    return {"backend": best["backend"], "ms": best[key]}


def ann_kind(kind: str, emb: np.ndarray, queries: np.ndarray, truth: np.ndarray, exact: list[dict],
             args: argparse.Namespace, workdir: Path) -> dict:
    """Build, persist, reload and time one ANN kind; recall@10 against ``truth``; knob sweep."""
    t = time.perf_counter()
    built = build_ann(emb, kind)  # FAISS's default threads (all cores)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    entry = write_ann(workdir, built, embeddings_identity(emb, "synthetic"), kind, build_s)
    write_s = time.perf_counter() - t
    t = time.perf_counter()
    ann = load_ann(workdir, entry, embeddings_identity(emb, "synthetic"))  # memory-mapped, as search loads it
    load_s = time.perf_counter() - t
    searcher = AnnSearcher(ann=ann)
    recall = _recall(searcher.search(queries, 10)[0], truth)
    latency = []
    for n in args.ann_threads:
        with _threads(n):
            lat = _latency(searcher, queries, args.repeats, args.batch)
        single, batched = (_best_exact(exact, n, k) for k in ("single_query_ms_median", "batch_ms_per_query"))
        latency.append({"threads": n, **lat, "exact_single": single, "exact_batch": batched,
                        "speedup_single": single["ms"] / lat["single_query_ms_median"],
                        "speedup_batch": batched["ms"] / lat["batch_ms_per_query"]})
    knob = ANN_KINDS[kind].knob
    sweep = []
    for value in _sweep_values(kind, built.params[knob]):
        s = AnnSearcher(ann=ann, **{knob: value})
        t = time.perf_counter()
        found = s.search(queries, 10)[0]
        sweep.append({knob: value, "recall_at_10": _recall(found, truth),
                      "ms_per_query": 1e3 * (time.perf_counter() - t) / len(queries)})
    return {"kind": kind, "params": built.params, "build_s": build_s, "file_mb": (workdir / entry["file"]).stat().st_size
            / 2**20, "write_s": write_s, "load_mmap_s": load_s, "recall_at_10": recall, "latency": latency,
            "sweep": sweep}


def _sweep_values(kind: str, default: int) -> list[int]:
    base = {"ivf": [4, 8, 16, 32, 64, 128], "hnsw": [32, 64, 128, 256, 512]}[kind]
    return sorted(set(base) | {default})


def bench_ann(args: argparse.Namespace) -> dict:
    """ANN build, latency and recall@10 at ``--ann-size`` clustered vectors, against exact search."""
    n, dim = args.ann_size, args.ann_dim
    t = time.perf_counter()
    emb, queries = clustered_unit_vectors(n, dim, args.ann_clusters, args.ann_queries, seed=0)
    print(f"ANN: {n} x {dim} clustered vectors in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    t = time.perf_counter()
    truth, _ = numpy_search(emb, queries, 10)  # the exact top-10 (ties: lower row)
    truth_s = time.perf_counter() - t
    exact = ann_exact(emb, queries, args.ann_threads, args.repeats, args.batch)
    kinds = []
    for kind in args.ann_kinds:
        with tempfile.TemporaryDirectory(prefix="pscl-ann-") as d:
            kinds.append(ann_kind(kind, emb, queries, truth, exact, args, Path(d)))
        print(f"ANN: {kind} done", file=sys.stderr)
    return {"clips": n, "dim": dim, "clusters": args.ann_clusters, "queries": args.ann_queries, "top_k": 10,
            "batch": args.batch, "data": "clustered_unit_vectors(seed=0)", "truth": "numpy exact top-10",
            "truth_s": truth_s, "exact": exact, "kinds": kinds}


def print_ann(res: dict) -> None:
    print(f"\napproximate search, {res['clips']} x {res['dim']} clustered vectors, top-10, recall@10 over "
          f"{res['queries']} queries against exact numpy; speed-up over the faster exact backend, same threads:")
    for e in res["exact"]:
        print(f"  exact {e['backend']:>6}, {e['threads']} thread(s): 1 query {e['single_query_ms_median']:.1f} ms, "
              f"{e['batch_ms_per_query']:.2f} ms/query in {res['batch']}")
    print(f"{'kind':>5} {'params':>28} {'build s':>8} {'MB':>6} {'recall@10':>9} {'thr':>4} {'1 query ms':>10} "
          f"{'x exact':>8} {'ms/q batch':>10} {'x exact':>8}")
    for k in res["kinds"]:
        params = ",".join(f"{a}={b}" for a, b in k["params"].items())
        for lat in k["latency"]:
            print(f"{k['kind']:>5} {params:>28} {k['build_s']:>8.1f} {k['file_mb']:>6.0f} {k['recall_at_10']:>9.3f} "
                  f"{lat['threads']:>4} {lat['single_query_ms_median']:>10.3f} {lat['speedup_single']:>7.0f}x "
                  f"{lat['batch_ms_per_query']:>10.3f} {lat['speedup_batch']:>7.0f}x")
        knob = ANN_KINDS[k["kind"]].knob
        print("      sweep: " + "  ".join(f"{knob}={s[knob]}: {s['recall_at_10']:.3f} @ {s['ms_per_query']:.3f} ms/q"
                                          for s in k["sweep"]))


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
    ap.add_argument("--ann-size", type=int, default=1_000_000,
                    help="clustered vectors for the ANN part (default 1M; 0: skip it; needs FAISS)")
    ap.add_argument("--ann-dim", type=int, default=256)
    ap.add_argument("--ann-clusters", type=int, default=4096)
    ap.add_argument("--ann-queries", type=int, default=1000, help="queries for recall@10 (and the knob sweep)")
    ap.add_argument("--ann-kinds", nargs="+", default=list(ANN_KINDS), choices=list(ANN_KINDS))
    ap.add_argument("--ann-threads", type=int, nargs="+", default=sorted({1, min(2, os.cpu_count() or 1)}))
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
    ann = bench_ann(args) if args.ann_size and _faiss_available() else None

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

    if ann:
        print_ann(ann)

    result = {"embedding": "excluded (synthetic vectors)", "hash_mb_per_s": hash_mb_s, "build": builds,
              "query": queries, "threads": os.cpu_count(), **({"ann": ann} if ann else {})}
    write_results(json_path(args), result)


if __name__ == "__main__":
    main()
