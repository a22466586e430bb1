"""Approximate (FAISS) search: recall against exact search, the persisted ANN index and its identity,
``auto`` choices, the no-FAISS path, and ``index --ann`` / ``search --backend`` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from paraspeechclap.errors import InputError
from paraspeechclap.search import ann as ann_mod
from paraspeechclap.search.backends import (
    AnnSearcher,
    create_searcher,
    numpy_search,
    resolve_backend,
)
from paraspeechclap.search.index import (
    IndexItem,
    build_index,
    list_audio_files,
    load_index,
    update_ann,
)
from paraspeechclap.testing import clustered_unit_vectors, tone

needs_faiss = pytest.mark.skipif(not ann_mod.faiss_available(), reason="needs the faiss extra")

N, DIM = 3000, 32


@pytest.fixture(scope="module")
def data():
    return clustered_unit_vectors(N, DIM, clusters=60, queries=200, seed=3)


def recall_at_10(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / exact.shape[1] for a, b in zip(approx, exact)]))


# ---------------------------------------------------------------- in memory


@needs_faiss
@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_ann_recall_is_high_and_scores_are_exact(data, kind):
    emb, queries = data
    exact, _ = numpy_search(emb, queries, 10)
    idx, scores = create_searcher("ann", emb, kind=kind).search(queries, 10)
    assert idx.shape == (200, 10)
    assert recall_at_10(idx, exact) >= 0.95
    # Flat storage: the rows found carry their exact inner products, best first
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, emb[idx]), atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


@needs_faiss
def test_ivf_knob_override_is_applied(data):
    emb, queries = data
    built = ann_mod.build_ann(emb, "ivf")
    nlist = built.params["nlist"]
    assert built.params == ann_mod.ivf_params(N) and 1 < built.params["nprobe"] < nlist
    exact, _ = numpy_search(emb, queries, 10)
    every_list, _ = AnnSearcher(ann=built, nprobe=nlist).search(queries, 10)
    one_list, _ = AnnSearcher(ann=built, nprobe=1).search(queries, 10)
    assert recall_at_10(every_list, exact) == 1.0  # scanning every list is exhaustive
    assert recall_at_10(one_list, exact) < recall_at_10(AnnSearcher(ann=built).search(queries, 10)[0], exact)


@needs_faiss
def test_auto_rule():
    assert ann_mod.choose_kind("auto", ann_mod.AUTO_MIN_ROWS - 1) is None
    assert ann_mod.choose_kind("auto", ann_mod.AUTO_MIN_ROWS) == "ivf"
    assert ann_mod.choose_kind("none", 10**7) is None
    assert ann_mod.choose_kind("hnsw", 5) == "hnsw" and ann_mod.choose_kind("ivf", 0) is None
    with pytest.raises(InputError, match="unknown --ann 'annoy'"):
        ann_mod.choose_kind("annoy", 10)
    assert resolve_backend("auto", has_ann=False) == "numpy" and resolve_backend("auto", has_ann=True) == "ann"
    with pytest.raises(InputError, match="no ANN index"):
        resolve_backend("ann", has_ann=False)


@needs_faiss
def test_persisted_ann_round_trips(tmp_path, data):
    emb, queries = data
    built = ann_mod.build_ann(emb, "ivf")
    identity = ann_mod.embeddings_identity(emb, "embeddings-x.npy")
    entry = ann_mod.write_ann(tmp_path, built, identity, "t1", 0.0)
    assert entry["file"] == "ann-t1.faiss" and entry["params"] == built.params
    assert [p.name for p in tmp_path.iterdir()] == ["ann-t1.faiss"]  # no temporary left behind
    loaded = ann_mod.load_ann(tmp_path, entry, identity)
    a, sa = built.search(queries, 10)
    b, sb = loaded.search(queries, 10)
    assert a.tolist() == b.tolist()
    np.testing.assert_array_equal(sa, sb)
    other = emb.copy()
    other[N // 2] = -other[N // 2]  # one row changed, same shape
    with pytest.raises(InputError, match="stale ANN index.*fingerprint.*--ann ivf"):
        ann_mod.load_ann(tmp_path, entry, ann_mod.embeddings_identity(other, "embeddings-x.npy"))


# ---------------------------------------------------------------- persisted beside an index


class TableEmbedder:
    """Embeds file ``i`` (its bytes are ``b"row <i>"``) as row ``i`` of a fixed table."""

    model_id, checksum = "table", "t1"

    def __init__(self, table: np.ndarray):
        self.table, self.calls = table, 0

    def embed_audio_report(self, items, sample_rate=None, batch_size=16, progress=False, skip_bad=True):
        self.calls += len(items)
        rows = [int(Path(p).read_bytes().split()[1]) for p in items]
        return SimpleNamespace(embeddings=self.table[rows], indices=list(range(len(items))), errors=[])


def _files(folder: Path, rows) -> list[IndexItem]:
    folder.mkdir(parents=True, exist_ok=True)
    for i in rows:
        (folder / f"c{i:05d}.wav").write_bytes(f"row {i}".encode())
    return [IndexItem(p) for p in list_audio_files(folder)]


@pytest.fixture()
def ann_index(tmp_path, data):
    emb, _ = data
    audio, out = tmp_path / "audio", tmp_path / "idx"
    items = _files(audio, range(N))
    stats = build_index(TableEmbedder(emb), items, out, audio, ann="ivf", block_size=4096)
    assert (stats.ann, stats.ann_built) == ("ivf", True)
    return SimpleNamespace(audio=audio, out=out, emb=emb)


@needs_faiss
def test_index_ann_search_matches_exact_closely_and_auto_uses_it(ann_index, data):
    _, queries = data
    idx = load_index(ann_index.out)
    assert idx.has_ann and idx.meta["ann"]["identity"]["count"] == N
    exact = idx.search(queries, 10, backend="numpy")
    approx = idx.search(queries, 10, backend="ann")
    assert idx.search(queries, 10) == approx  # auto: the ANN index
    assert recall_at_10(np.array([[i for i, _ in h] for h in approx]), np.array([[i for i, _ in h] for h in exact])) >= 0.95
    centred = idx.with_embeddings(np.asarray(idx.embeddings).copy())
    assert not centred.has_ann and centred.search(queries, 10) == exact  # other vectors: auto is exact
    with pytest.raises(InputError, match="no ANN index"):
        centred.search(queries, 10, backend="ann")


@needs_faiss
def test_rebuilds_keep_replace_or_drop_the_ann_index(ann_index):
    audio, out, emb = ann_index.audio, ann_index.out, ann_index.emb
    first = load_index(out).meta["ann"]["file"]
    embedder = TableEmbedder(emb)
    stats = build_index(embedder, _files(audio, []), out, audio, ann="ivf")  # nothing changed
    assert (stats.written, stats.ann_built, embedder.calls) == (False, False, 0)
    assert load_index(out).meta["ann"]["file"] == first

    (audio / "c00007.wav").unlink()  # the embeddings change: the ANN index is rebuilt from the new ones
    stats = build_index(embedder, _files(audio, []), out, audio, ann="ivf")
    idx = load_index(out)
    assert stats.written and stats.ann_built and idx.meta["ann"]["file"] != first
    assert idx.meta["ann"]["identity"] == idx.identity() and idx.ann().index.ntotal == N - 1
    assert sorted(p.name for p in out.glob("ann-*")) == [idx.meta["ann"]["file"]]  # the old file is gone

    assert update_ann(out, "hnsw")[:2] == ("hnsw", True)  # another kind replaces it
    assert load_index(out).ann().kind == "hnsw"
    assert update_ann(out, "auto") == (None, False, 0.0)  # 2999 rows: auto wants none
    assert not load_index(out).has_ann and list(out.glob("ann-*")) == []


@needs_faiss
def test_stale_ann_index_is_refused(ann_index, data):
    out = ann_index.out
    meta = json.loads((out / "meta.json").read_text())
    tampered = np.load(out / meta["embeddings_file"])
    tampered[[0, -1]] = tampered[[-1, 0]]  # same shape and file name, other rows
    np.save(out / meta["embeddings_file"], tampered)
    with pytest.raises(InputError, match=r"stale ANN index.*fingerprint") as err:
        load_index(out).search(data[1][:1], 10, backend="auto")
    assert "\n" not in str(err.value)
    assert load_index(out).search(data[1][:1], 3, backend="numpy")  # exact search still works
    assert update_ann(out, "ivf")[1]  # a rebuild replaces the stale file
    assert load_index(out).search(data[1][:1], 3, backend="ann")


# ---------------------------------------------------------------- without FAISS




def test_without_faiss(tmp_path, data, no_faiss, caplog):
    emb, queries = data
    audio = tmp_path / "audio"
    items = _files(audio, range(50))
    embedder = TableEmbedder(emb)
    with pytest.raises(InputError, match=r"--ann ivf needs FAISS: pip install 'paraspeechclap\[faiss\]'"):
        build_index(embedder, items, tmp_path / "idx", audio, ann="ivf")
    assert embedder.calls == 0  # refused before embedding anything
    assert build_index(embedder, items, tmp_path / "idx", audio, ann="none").ann is None
    assert ann_mod.choose_kind("auto", 10**6) is None and "FAISS is not installed" in caplog.text
    assert load_index(tmp_path / "idx").search(queries[:2], 5)[0][0][0] == int(numpy_search(emb[:50], queries[:1], 1)[0][0, 0])


@needs_faiss
def test_index_with_ann_but_no_faiss_searches_exactly(ann_index, data, no_faiss, caplog):
    idx = load_index(ann_index.out)  # built with FAISS; now it cannot be imported
    exact = numpy_search(ann_index.emb, data[1][:5], 10)[0]
    assert [[i for i, _ in h] for h in idx.search(data[1][:5], 10)] == exact.tolist()  # auto: numpy
    assert "FAISS is not installed" in caplog.text
    with pytest.raises(InputError, match=r"'ann' search backend needs FAISS: pip install 'paraspeechclap\[faiss\]'"):
        idx.search(data[1][:5], 10, backend="ann")


def test_cli_ann_without_faiss_is_a_one_line_error(tmp_path, no_faiss, capsys):
    audio = tmp_path / "audio"
    _files(audio, range(3))
    rc, _, err = _run(capsys, ["index", str(audio), "--out", str(tmp_path / "idx"), "--ann", "hnsw"])
    assert rc == 2 and err == "error: --ann hnsw needs FAISS: pip install 'paraspeechclap[faiss]' (or faiss-cpu)\n"
    assert not (tmp_path / "idx").exists()  # refused before the model was loaded or anything embedded


# ---------------------------------------------------------------- CLI with the tiny model


@pytest.fixture()
def audio_dir(tmp_path):
    d = tmp_path / "clips"
    d.mkdir()
    for i, (sec, f0) in enumerate([(0.8, 110.0), (1.2, 180.0), (0.6, 260.0), (1.0, 340.0), (0.7, 220.0)]):
        sf.write(d / f"clip{i}.wav", tone(sec, f0, seed=i), 16000)
    return d


def _run(capsys, argv):
    from paraspeechclap.cli.main import main

    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


@needs_faiss
def test_cli_index_ann_then_search_backend_ann(tmp_path, tiny_dir, audio_dir, capsys):
    idx, query = tmp_path / "idx", "a deep, slow voice"
    common = ["--model", str(tiny_dir), "--device", "cpu"]
    rc, out, _ = _run(capsys, ["index", str(audio_dir), "--out", str(idx), "--json", *common])
    assert rc == 0 and json.loads(out)["ann"] == {"requested": "auto", "kind": None, "built": False}
    rc, _, err = _run(capsys, ["search", str(idx), query, "--backend", "ann"])
    assert rc == 2 and err.count("\n") == 1 and "no ANN index" in err and "--ann ivf" in err
    rc, out, _ = _run(capsys, ["search", str(idx), query, "--json"])
    exact = json.loads(out)
    assert exact["backend"] == "numpy" and exact["backend_requested"] == "auto" and "ann" not in exact

    rc, out, _ = _run(capsys, ["index", str(audio_dir), "--out", str(idx), "--ann", "ivf", "--json", *common])
    stats = json.loads(out)
    assert rc == 0 and stats["embedded"] == 0 and stats["ann"] == {"requested": "ivf", "kind": "ivf", "built": True}
    for backend in ("ann", "auto"):
        rc, out, _ = _run(capsys, ["search", str(idx), query, "--backend", backend, "--json"])
        got = json.loads(out)
        assert rc == 0 and got["backend"] == "ann" and got["ann"]["kind"] == "ivf"
        # 5 rows: one IVF list, so the approximate search is exhaustive and must equal the exact one
        assert got["results"] == exact["results"]
    rc, out, _ = _run(capsys, ["search", str(idx), query, "--backend", "ann", "--nprobe", "3", "--json"])
    assert json.loads(out)["ann"]["nprobe"] == 3


@needs_faiss
def test_cli_centred_search_with_ann_is_exact(tmp_path, tiny_dir, audio_dir, capsys):
    idx, query = tmp_path / "idx", "a calm voice"
    common = ["--model", str(tiny_dir), "--device", "cpu"]
    assert _run(capsys, ["index", str(audio_dir), "--out", str(idx), "--ann", "hnsw", *common])[0] == 0
    rc, out, _ = _run(capsys, ["search", str(idx), query, "--center", "collection", "--backend", "numpy", "--json"])
    exact = json.loads(out)
    rc, out, err = _run(capsys, ["search", str(idx), query, "--center", "collection", "--backend", "ann", "--json"])
    got = json.loads(out)
    assert rc == 0 and got["backend"] == "numpy" and "cannot serve centred" in got["note"] and "note:" in err
    assert got["results"] == exact["results"]
    rc, out, _ = _run(capsys, ["search", str(idx), query, "--center", "collection", "--json"])
    assert json.loads(out)["backend"] == "numpy" and json.loads(out)["results"] == exact["results"]
    rc, out, _ = _run(capsys, ["search", str(idx), query, "--json"])
    assert json.loads(out)["backend"] == "ann"
