"""Style search: backends against a naive sort, incremental index builds, and the index/search CLI."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from paraspeechclap.errors import AudioError, InputError
from paraspeechclap.search.backends import create_searcher, numpy_search
from paraspeechclap.search.index import IndexItem, build_index, list_audio_files, load_index
from paraspeechclap.testing import tone

# ---------------------------------------------------------------- backends


def naive_topk(emb, queries, k):
    out = []
    for q in queries:
        scores = [float(np.dot(q, e)) for e in emb]
        order = sorted(range(len(emb)), key=lambda i: (-scores[i], i))[:k]
        out.append([(i, scores[i]) for i in order])
    return out


@pytest.mark.parametrize("k", [1, 3, 10, 50])
def test_numpy_search_matches_naive_with_ties(k):
    rng = np.random.default_rng(k)
    emb = rng.integers(-2, 3, size=(40, 4)).astype(np.float32)  # small integers: many tied scores
    queries = rng.integers(-2, 3, size=(5, 4)).astype(np.float32)
    idx, scores = numpy_search(emb, queries, k)
    ref = naive_topk(emb, queries, k)
    assert idx.shape == (5, min(k, 40))
    for q in range(5):
        assert idx[q].tolist() == [i for i, _ in ref[q]]
        np.testing.assert_allclose(scores[q], [s for _, s in ref[q]], rtol=1e-6)


def test_numpy_search_blocks_many_queries(monkeypatch):
    from paraspeechclap.search import backends

    monkeypatch.setattr(backends, "_MAX_SCORES", 100)  # force several query blocks
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((30, 8)).astype(np.float32)
    queries = rng.standard_normal((17, 8)).astype(np.float32)
    idx, _ = numpy_search(emb, queries, 4)
    assert idx.tolist() == [[i for i, _ in r] for r in naive_topk(emb, queries, 4)]


def test_faiss_matches_numpy():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(2)
    emb = rng.standard_normal((200, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    queries = emb[:3] + 0.1 * rng.standard_normal((3, 16)).astype(np.float32)
    a, sa = numpy_search(emb, queries, 7)
    b, sb = create_searcher("faiss", emb).search(queries, 7)
    assert a.tolist() == b.tolist()
    np.testing.assert_allclose(sa, sb, atol=1e-5)


def test_faiss_missing_gives_install_hint(no_faiss):
    with pytest.raises(InputError, match=r"paraspeechclap\[faiss\]"):
        create_searcher("faiss", np.ones((2, 2), np.float32))
    with pytest.raises(InputError, match="unknown search backend"):
        create_searcher("annoy", np.ones((2, 2), np.float32))


# ---------------------------------------------------------------- index with a fake embedder


class FakeEmbedder:
    """Embeds a file as a unit vector derived from its bytes; records which files it was asked for."""

    model_id = "fake"

    def __init__(self, checksum="c1", dim=8, fail_on=()):
        self.checksum, self.dim, self.fail_on = checksum, dim, set(fail_on)
        self.calls: list[str] = []

    def vector(self, path):
        seed = int.from_bytes(hashlib.sha256(Path(path).read_bytes()).digest()[:4], "little")
        v = np.random.default_rng(seed).standard_normal(self.dim)
        return (v / np.linalg.norm(v)).astype(np.float32)

    def embed_audio_report(self, items, sample_rate=None, batch_size=16, progress=False, skip_bad=True):
        from types import SimpleNamespace

        embs, idx, errors = [], [], []
        for i, p in enumerate(items):
            self.calls.append(Path(p).name)
            if Path(p).name in self.fail_on:
                if not skip_bad:
                    raise AudioError(f"{p}: cannot decode audio")
                errors.append((i, f"{p}: cannot decode audio"))
                continue
            embs.append(self.vector(p))
            idx.append(i)
        emb = np.stack(embs) if embs else np.zeros((0, self.dim), np.float32)
        return SimpleNamespace(embeddings=emb, indices=idx, errors=errors)


def _write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _check_rows(index, fake):
    """Every row's embedding is the embedding of the file it names."""
    for i, row in enumerate(index.items):
        np.testing.assert_allclose(index.embeddings[i], fake.vector(index.path_of(i)), atol=1e-6)
        assert row["hash"] == hashlib.blake2b(index.path_of(i).read_bytes(), digest_size=16).hexdigest()


def test_list_audio_files_recursive_by_extension(tmp_path):
    for name in ["b.wav", "a/c.FLAC", "a/d.mp3", "a/e.txt", ".hidden.wav", ".git/x.wav", "z/y.ogg"]:
        _write(tmp_path / name, b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in list_audio_files(tmp_path)]
    assert found == ["a/c.FLAC", "a/d.mp3", "b.wav", "z/y.ogg"]
    with pytest.raises(InputError, match="not a directory"):
        list_audio_files(tmp_path / "b.wav")


def test_incremental_build_reuses_by_content_hash(tmp_path):
    audio, out = tmp_path / "audio", tmp_path / "idx"
    files = [_write(audio / f"f{i}.wav", bytes([i]) * (100 + i)) for i in range(3)]
    _write(audio / "sub" / "copy.wav", files[0].read_bytes())  # identical content: embedded once
    fake = FakeEmbedder()
    items = lambda: [IndexItem(p) for p in list_audio_files(audio)]
    stats = build_index(fake, items(), out, audio)
    assert (stats.total, stats.embedded, stats.reused) == (4, 3, 0)
    idx = load_index(out)
    assert [r["path"] for r in idx.items] == ["f0.wav", "f1.wav", "f2.wav", "sub/copy.wav"]
    _check_rows(idx, fake)

    fake.calls.clear()
    before = sorted(p.name for p in out.iterdir())
    stats = build_index(fake, items(), out, audio)
    assert stats.embedded == 0 and fake.calls == [] and not stats.written  # nothing changed: no rewrite
    assert sorted(p.name for p in out.iterdir()) == before

    # same size and mtime, different bytes: a size+mtime key would miss this change
    st = files[1].stat()
    files[1].write_bytes(bytes([9]) * st.st_size)
    os.utime(files[1], ns=(st.st_atime_ns, st.st_mtime_ns))
    _write(audio / "new.wav", b"new" * 50)
    files[2].unlink()
    fake.calls.clear()
    stats = build_index(fake, items(), out, audio)
    assert sorted(fake.calls) == ["f1.wav", "new.wav"] and stats.reused == 2
    idx = load_index(out)
    assert [r["path"] for r in idx.items] == ["f0.wav", "f1.wav", "new.wav", "sub/copy.wav"]
    _check_rows(idx, fake)
    assert len(list(out.glob("embeddings-*.npy"))) == 1 and len(list(out.glob("items-*.jsonl"))) == 1


def test_other_model_checksum_reembeds_everything(tmp_path):
    audio = tmp_path / "audio"
    for i in range(3):
        _write(audio / f"f{i}.wav", bytes([i]) * 64)
    items = [IndexItem(p) for p in list_audio_files(audio)]
    build_index(FakeEmbedder("c1"), items, tmp_path / "idx", audio)
    other = FakeEmbedder("c2")
    assert build_index(other, items, tmp_path / "idx", audio).embedded == 3
    assert load_index(tmp_path / "idx").meta["model"]["checksum"] == "c2"


def test_interrupted_build_keeps_done_blocks_and_resumes(tmp_path):
    audio, out = tmp_path / "audio", tmp_path / "idx"
    for i in range(7):
        _write(audio / f"f{i}.wav", bytes([i]) * 32)
    items = [IndexItem(p) for p in list_audio_files(audio)]
    broken = FakeEmbedder(fail_on={"f5.wav"})
    with pytest.raises(AudioError, match="f5.wav"):
        build_index(broken, items, out, audio, block_size=2, commit_every_s=0.0)
    done = load_index(out)
    assert [r["path"] for r in done.items] == ["f0.wav", "f1.wav", "f2.wav", "f3.wav"]
    _check_rows(done, broken)
    fixed = FakeEmbedder()
    stats = build_index(fixed, items, out, audio, block_size=2)
    assert sorted(fixed.calls) == ["f4.wav", "f5.wav", "f6.wav"] and stats.reused == 4
    assert load_index(out).meta["count"] == 7


def test_skip_bad_lists_failures(tmp_path):
    audio = tmp_path / "audio"
    for i in range(3):
        _write(audio / f"f{i}.wav", bytes([i]) * 32)
    items = [IndexItem(p) for p in list_audio_files(audio)] + [IndexItem(audio / "missing.wav")]
    stats = build_index(FakeEmbedder(fail_on={"f1.wav"}), items, tmp_path / "idx", audio, skip_bad=True)
    idx = load_index(tmp_path / "idx")
    assert [r["path"] for r in idx.items] == ["f0.wav", "f2.wav"]
    assert sorted(p for p, _ in stats.skipped) == ["f1.wav", "missing.wav"]
    assert sorted(s["path"] for s in idx.meta["skipped"]) == ["f1.wav", "missing.wav"]
    with pytest.raises(AudioError, match="missing.wav"):
        build_index(FakeEmbedder(), items, tmp_path / "idx2", audio)


def test_refuses_non_index_directory_and_bad_index(tmp_path):
    (tmp_path / "other").mkdir()
    _write(tmp_path / "other" / "keep.txt", b"important")
    with pytest.raises(InputError, match="not an index"):
        build_index(FakeEmbedder(), [], tmp_path / "other", tmp_path)
    with pytest.raises(InputError, match="no meta.json"):
        load_index(tmp_path / "other")
    _write(tmp_path / "bad" / "meta.json", b'{"format": "something-else"}')
    with pytest.raises(InputError, match="not a version-1"):
        load_index(tmp_path / "bad")


def test_index_search_method(tmp_path):
    audio = tmp_path / "audio"
    for i in range(5):
        _write(audio / f"f{i}.wav", bytes([i]) * 32)
    fake = FakeEmbedder()
    build_index(fake, [IndexItem(p) for p in list_audio_files(audio)], tmp_path / "idx", audio)
    idx = load_index(tmp_path / "idx")
    query = fake.vector(audio / "f3.wav")
    hits = idx.search(query, top_k=2)[0]
    assert hits[0][0] == 3 and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(InputError, match="dimension"):
        idx.search(np.ones(3), top_k=1)
    with pytest.raises(InputError, match="top-k"):
        idx.search(query, top_k=0)


# ---------------------------------------------------------------- CLI with the tiny model


@pytest.fixture()
def audio_dir(tmp_path):
    d = tmp_path / "clips"
    for i, (sec, f0) in enumerate([(0.8, 110.0), (1.2, 180.0), (0.6, 260.0), (1.0, 340.0)]):
        (d / ("sub" if i % 2 else "")).mkdir(parents=True, exist_ok=True)
        sf.write(d / ("sub" if i % 2 else "") / f"clip{i}.wav", tone(sec, f0, seed=i), 16000)
    return d


def _run(capsys, argv):
    from paraspeechclap.cli.main import main

    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_index_and_search(tmp_path, tiny_dir, audio_dir, capsys):
    from paraspeechclap.pretrained import load_model

    idx = tmp_path / "idx"
    common = ["--model", str(tiny_dir), "--device", "cpu"]
    rc, out, _ = _run(capsys, ["index", str(audio_dir), "--out", str(idx), "--json", *common])
    assert rc == 0
    stats = json.loads(out)
    assert (stats["files"], stats["embedded"], stats["reused"]) == (4, 4, 0)

    query = "a deep, slow voice"
    rc, out, _ = _run(capsys, ["search", str(idx), query, "--top-k", "3", "--json"])  # model from the index
    assert rc == 0
    hits = json.loads(out)["results"][0]["hits"]
    # independent reference: embed each file and the query with the same model, sort by cosine
    model = load_model(tiny_dir, device="cpu")
    files = sorted(audio_dir.rglob("*.wav"))
    scores = (model.embed_audio([str(p) for p in files]) @ model.embed_text([query]).T)[:, 0]
    ref = sorted(range(len(files)), key=lambda i: -scores[i])[:3]
    assert [h["path"] for h in hits] == [str(files[i].resolve()) for i in ref]
    np.testing.assert_allclose([h["score"] for h in hits], scores[ref], atol=1e-4)

    rc, out, _ = _run(capsys, ["index", str(audio_dir), "--out", str(idx), "--json", *common])
    assert json.loads(out)["embedded"] == 0 and json.loads(out)["reused"] == 4

    rc, out, _ = _run(capsys, ["search", str(idx), query, "--top-k", "2"])
    assert rc == 0 and out.count(".wav") == 2 and "query: " + query in out


def test_cli_search_refuses_other_model(tmp_path, tiny_dir, audio_dir, capsys):
    from paraspeechclap.testing import tiny_model

    other = tmp_path / "other_model"
    tiny_model(seed=1).save_pretrained(other)
    idx = tmp_path / "idx"
    assert _run(capsys, ["index", str(audio_dir), "--out", str(idx), "--model", str(tiny_dir), "--device", "cpu"])[0] == 0
    rc, _, err = _run(capsys, ["search", str(idx), "calm", "--model", str(other), "--device", "cpu"])
    assert rc == 2 and "checksum" in err


def test_cli_index_manifest_and_errors(tmp_path, tiny_dir, audio_dir, capsys):
    rows = [{"source": "clips", "relative_audio_path": "clip0.wav", "text_description": ["A low voice.", "x"]},
            {"source": "clips", "relative_audio_path": "sub/clip1.wav", "text_description": "A mid voice."}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    idx = tmp_path / "idx"
    common = ["--model", str(tiny_dir), "--device", "cpu"]
    rc, _, _ = _run(capsys, ["index", "--manifest", str(manifest), "--out", str(idx), *common])
    assert rc == 0
    items = load_index(idx).items
    assert [(r["key"], r["caption"]) for r in items] == [("clips/clip0.wav", "A low voice."),
                                                         ("clips/sub/clip1.wav", "A mid voice.")]
    rc, _, err = _run(capsys, ["index", str(audio_dir), "--manifest", str(manifest), "--out", str(idx), *common])
    assert rc == 2 and "exactly one" in err
    (audio_dir / "broken.wav").write_bytes(b"not audio")
    rc, _, err = _run(capsys, ["index", str(audio_dir), "--out", str(tmp_path / "i2"), *common])
    assert rc == 2 and "broken.wav" in err
    rc, out, _ = _run(capsys, ["index", str(audio_dir), "--out", str(tmp_path / "i2"), "--skip-bad", "--json", *common])
    stats = json.loads(out)
    assert rc == 0 and stats["embedded"] == 4 and [s["path"] for s in stats["skipped"]] == ["broken.wav"]


def _hand_centred(emb, groups):
    """Each row minus the mean of the rows in its group (``groups``: a list of index lists), re-normalised."""
    out = np.array(emb, dtype=np.float64)
    for g in groups:
        out[g] = out[g] - np.asarray(emb, dtype=np.float64)[g].mean(axis=0)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_cli_search_centres_the_index_as_asked(tmp_path, tiny_dir, audio_dir, capsys):
    from paraspeechclap.pretrained import load_model

    files = ["clip0.wav", "sub/clip1.wav", "clip2.wav", "sub/clip3.wav"]
    rows = [{"source": "clips", "relative_audio_path": f, "who": w} for f, w in zip(files, ["a", "b", "a", "b"])]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    idx = tmp_path / "idx"
    common = ["--model", str(tiny_dir), "--device", "cpu"]
    assert _run(capsys, ["index", "--manifest", str(manifest), "--audio-root", str(audio_dir.parent),
                         "--speaker-field", "who", "--out", str(idx), *common])[0] == 0
    assert [r["speaker"] for r in load_index(idx).items] == ["a", "b", "a", "b"]

    model = load_model(tiny_dir, device="cpu")
    raw = model.embed_audio([str(audio_dir / f) for f in files])
    query = "a deep, slow voice"
    q = model.embed_text([query])[0]
    ref_clip = str(tmp_path / "room.wav")  # not in the index: a clip centred on itself is a zero vector, whose
    sf.write(ref_clip, tone(0.9, 150.0, seed=9), 16000)  # direction is rounding noise
    expected = {"collection": _hand_centred(raw, [[0, 1, 2, 3]]), "speaker": _hand_centred(raw, [[0, 2], [1, 3]])}
    shifted = raw - model.embed_audio([ref_clip])[0]  # centred on the one reference clip
    expected["reference"] = shifted / np.linalg.norm(shifted, axis=1, keepdims=True)
    for name, flags in {"collection": ["--center", "collection"], "speaker": ["--center", "speaker"],
                        "reference": ["--reference", ref_clip]}.items():
        rc, out, _ = _run(capsys, ["search", str(idx), query, "--top-k", "4", "--json", *flags])
        assert rc == 0, name
        got = json.loads(out)
        scores = expected[name] @ q
        hits = got["results"][0]["hits"]
        np.testing.assert_allclose([h["score"] for h in hits], np.sort(scores)[::-1], atol=1e-4, err_msg=name)
        assert got["center"]["mode"] == ("none" if name == "reference" else name)
        assert got["center"]["reference"] == ([ref_clip] if name == "reference" else [])
        assert got["center"]["head"] == "main"  # stored embeddings: the centred head needs the clips
    assert got["center"]["speakers"] == 0
    rc, out, _ = _run(capsys, ["search", str(idx), query, "--json"])
    assert json.loads(out)["center"] == {"mode": "none", "speaker_field": None, "reference": [], "head": "main",
                                         "speaker_prior": None}
    # a speaker prior: each speaker's mean pulled towards the whole index's by 2 clips, written out here
    pull = raw.mean(axis=0)
    shrunk = raw.copy()
    for group in ([0, 2], [1, 3]):
        shrunk[group] -= (raw[group].sum(axis=0) + 2 * pull) / (len(group) + 2)
    shrunk /= np.linalg.norm(shrunk, axis=1, keepdims=True)
    rc, out, _ = _run(capsys, ["search", str(idx), query, "--top-k", "4", "--json", "--center", "speaker",
                               "--speaker-prior", "2"])
    got = json.loads(out)
    assert rc == 0 and got["center"]["speaker_prior"] == 2.0
    np.testing.assert_allclose([h["score"] for h in got["results"][0]["hits"]], np.sort(shrunk @ q)[::-1], atol=1e-4)


def test_cli_search_speaker_centring_needs_stored_speakers(tmp_path, tiny_dir, audio_dir, capsys):
    idx = tmp_path / "idx"
    common = ["--model", str(tiny_dir), "--device", "cpu"]
    assert _run(capsys, ["index", str(audio_dir), "--out", str(idx), *common])[0] == 0
    rc, _, err = _run(capsys, ["search", str(idx), "calm", "--center", "speaker"])
    assert rc == 2 and "4 row(s) have no speaker id" in err and "--speaker-field" in err
