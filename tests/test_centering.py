"""Centring of audio embeddings (``paraspeechclap.centering``): the arithmetic against hand-written
references, one-item groups, mixed speakers, the model API, and the CLI records of it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from paraspeechclap.centering import center_embeddings
from paraspeechclap.errors import InputError
from paraspeechclap.testing import tone


def _unit_rows(n: int, d: int = 5, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _ref_center(rows: list[list[float]], mean_of: list[list[float]]) -> list[list[float]]:
    """x' = (x - mean(R)) / |x - mean(R)|, written out with plain Python lists."""
    d = len(rows[0])
    mean = [sum(r[j] for r in mean_of) / len(mean_of) for j in range(d)]
    out = []
    for r in rows:
        c = [r[j] - mean[j] for j in range(d)]
        norm = math.sqrt(sum(v * v for v in c))
        out.append([v / norm for v in c])
    return out


def test_none_leaves_embeddings_as_they_are():
    x = _unit_rows(4)
    got, info = center_embeddings(x, "none")
    np.testing.assert_allclose(got, x, atol=1e-6)
    assert info.mode == "none" and not info.applied


def test_collection_subtracts_the_mean_of_all_items():
    x = _unit_rows(6)
    got, info = center_embeddings(x, "collection")
    np.testing.assert_allclose(got, _ref_center(x.tolist(), x.tolist()), atol=1e-6)
    assert info.mode == "collection" and info.applied
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_speaker_subtracts_each_speakers_mean_with_speakers_interleaved():
    x = _unit_rows(7, seed=1)
    speakers = ["b", "a", "b", "c", "a", "c", "b"]
    got, info = center_embeddings(x, "speaker", speakers)
    for spk in set(speakers):
        idx = [i for i, s in enumerate(speakers) if s == spk]
        expected = _ref_center([x[i].tolist() for i in idx], [x[i].tolist() for i in idx])
        np.testing.assert_allclose(got[idx], expected, atol=1e-6)
    assert info.speakers == 3 and info.fallback == 0


def test_reference_clips_replace_the_mean_in_every_mode():
    x, ref = _unit_rows(3, seed=2), _unit_rows(4, seed=3)
    expected = _ref_center(x.tolist(), ref.tolist())
    for mode in ("none", "collection"):
        got, info = center_embeddings(x, mode, reference=ref)
        np.testing.assert_allclose(got, expected, atol=1e-6)
        assert info.reference == 4 and info.applied
    # a single clip centred on its reference
    one, _ = center_embeddings(x[:1], "none", reference=ref)
    np.testing.assert_allclose(one, expected[:1], atol=1e-6)


def test_unnormalised_centring_keeps_the_differences_as_they_are():
    x = np.random.default_rng(4).normal(size=(5, 3)) * 3.0  # rows of any length: a stage before the normalisation
    speakers = ["a", "b", "a", "b", "a"]
    got, info = center_embeddings(x, "speaker", speakers, normalize=False)
    for spk in ("a", "b"):
        idx = [i for i, s in enumerate(speakers) if s == spk]
        mean = [sum(x[i][j] for i in idx) / len(idx) for j in range(3)]
        np.testing.assert_allclose(got[idx], [[x[i][j] - mean[j] for j in range(3)] for i in idx], atol=1e-12)
    assert info.speakers == 2
    col, _ = center_embeddings(x, "collection", normalize=False)
    np.testing.assert_allclose(col, x - x.mean(axis=0), atol=1e-12)


def test_a_speaker_with_one_clip_falls_back_to_the_reference_or_is_an_error():
    x, ref = _unit_rows(4, seed=4), _unit_rows(2, seed=5)
    speakers = ["a", "a", "solo", "a"]
    got, info = center_embeddings(x, "speaker", speakers, reference=ref)
    a = [0, 1, 3]
    np.testing.assert_allclose(got[a], _ref_center(x[a].tolist(), x[a].tolist()), atol=1e-6)
    np.testing.assert_allclose(got[2], _ref_center([x[2].tolist()], ref.tolist())[0], atol=1e-6)
    assert info.fallback == 1
    with pytest.raises(InputError, match="speaker 'solo' has only one clip"):
        center_embeddings(x, "speaker", speakers)


def _shrunk_ref(rows: list[list[float]], speakers: list[str], k: float, pull: list[float]) -> list[list[float]]:
    """x' = l2(x - (sum of the speaker's n rows + k * pull) / (n + k)), written out with plain Python lists."""
    out = []
    for r, s in zip(rows, speakers):
        mine = [q for q, t in zip(rows, speakers) if t == s]
        mean = [(sum(q[j] for q in mine) + k * pull[j]) / (len(mine) + k) for j in range(len(r))]
        c = [r[j] - mean[j] for j in range(len(r))]
        norm = math.sqrt(sum(v * v for v in c))
        out.append([v / norm for v in c])
    return out


def test_a_speaker_prior_shrinks_each_speakers_mean_towards_the_collection_by_k_clips():
    x = _unit_rows(7, seed=6)
    speakers = ["b", "a", "b", "solo", "a", "b", "a"]  # a lone speaker needs no reference with a prior
    pull = [sum(r[j] for r in x.tolist()) / 7 for j in range(5)]
    got, info = center_embeddings(x, "speaker", speakers, prior=4.0)
    np.testing.assert_allclose(got, _shrunk_ref(x.tolist(), speakers, 4.0, pull), atol=1e-6)
    assert info.prior == 4.0 and info.fallback == 0 and info.speakers == 3
    # with reference clips, each speaker is pulled towards their mean instead of the collection's
    ref = _unit_rows(3, seed=7)
    ref_mean = [sum(r[j] for r in ref.tolist()) / 3 for j in range(5)]
    got, _ = center_embeddings(x, "speaker", speakers, ref, prior=2.5)
    np.testing.assert_allclose(got, _shrunk_ref(x.tolist(), speakers, 2.5, ref_mean), atol=1e-6)
    # prior 0 is the plain speaker mean; other modes ignore the prior
    two = [s if s != "solo" else "b" for s in speakers]
    np.testing.assert_allclose(center_embeddings(x, "speaker", two, prior=0.0)[0],
                               center_embeddings(x, "speaker", two)[0], atol=1e-7)
    np.testing.assert_allclose(center_embeddings(x, "collection", prior=9.0)[0],
                               center_embeddings(x, "collection")[0], atol=1e-7)


def test_unnormalised_rows_lose_their_speaker_mean_pulled_towards_the_reference_by_k_clips() -> None:
    x = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0],  # a
                  [0.0, 6.0], [2.0, 2.0],  # b
                  [9.0, 1.0]])  # c, alone
    spk = ["a", "a", "a", "b", "b", "c"]
    m = [(1 + 3 + 5 + 0 + 2 + 9) / 6, (0 + 2 + 4 + 6 + 2 + 1) / 6]
    k = 2.0
    means = {"a": [(9 + k * m[0]) / 5, (6 + k * m[1]) / 5],  # hand-written: (sum of n rows + k m) / (n + k)
             "b": [(2 + k * m[0]) / 4, (8 + k * m[1]) / 4],
             "c": [(9 + k * m[0]) / 3, (1 + k * m[1]) / 3]}
    want = [[x[i, 0] - means[s][0], x[i, 1] - means[s][1]] for i, s in enumerate(spk)]
    np.testing.assert_allclose(center_embeddings(x, "speaker", spk, x, normalize=False, prior=k)[0], want, atol=1e-12)


def test_a_prior_of_zero_is_speaker_centring_and_a_huge_one_collection_centring() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3))
    spk = ["a", "a", "b", "b", "b", "c", "a"]  # c alone: on the collection mean at k = 0
    got = center_embeddings(x, "speaker", spk, x, normalize=False, prior=0.0)[0]
    for s in "ab":
        idx = [i for i, t in enumerate(spk) if t == s]
        np.testing.assert_allclose(got[idx], x[idx] - x[idx].mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(got[5], x[5] - x.mean(axis=0), atol=1e-12)
    huge, _ = center_embeddings(x, "speaker", spk, x, normalize=False, prior=1e12)
    np.testing.assert_allclose(huge, x - x.mean(axis=0), atol=1e-9)


def test_a_speaker_prior_still_refuses_a_clip_alone_and_bad_priors():
    with pytest.raises(InputError, match="has only one clip"):
        center_embeddings(_unit_rows(1), "speaker", ["a"], prior=4.0)  # its collection is itself
    one, _ = center_embeddings(_unit_rows(1), "speaker", ["a"], _unit_rows(2, seed=8), prior=4.0)
    assert np.isfinite(one).all()
    for bad in (-1.0, float("nan"), float("inf"), "four"):
        with pytest.raises(InputError, match="speaker prior"):
            center_embeddings(_unit_rows(3), "speaker", ["a", "a", "b"], prior=bad)


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "collection"}, "at least 2 clips"),
    ({"mode": "speaker"}, "one speaker id per clip"),
    ({"mode": "speaker", "speakers": ["a", "b"]}, r"1 clips, 2 ids"),
    ({"mode": "speaker", "speakers": [""]}, "clip 0 has no speaker id"),
    ({"mode": "median"}, "center must be one of none, collection, speaker"),
    ({"mode": "none", "reference": np.zeros((0, 5))}, "no reference clips"),
    ({"mode": "none", "reference": np.ones((2, 3))}, "embeddings of size 3"),
])
def test_impossible_centrings_are_one_line_errors(kwargs, message):
    with pytest.raises(InputError, match=message):
        center_embeddings(_unit_rows(1), **kwargs)


def test_embed_audio_centres_what_it_would_embed_plain(tiny):
    wavs = [tone(0.5 + 0.2 * i, 110 + 30 * i, seed=i) for i in range(5)]
    plain = tiny.embed_audio(wavs)
    speakers = ["x", "y", "x", "y", "y"]
    np.testing.assert_allclose(tiny.embed_audio(wavs, center="collection"),
                               _ref_center(plain.tolist(), plain.tolist()), atol=1e-5)
    got = tiny.embed_audio(wavs, center="speaker", speakers=speakers)
    for spk in "xy":
        idx = [i for i, s in enumerate(speakers) if s == spk]
        np.testing.assert_allclose(got[idx], _ref_center(plain[idx].tolist(), plain[idx].tolist()), atol=1e-5)
    ref_wavs = [tone(1.0, 90, seed=9), tone(0.8, 300, seed=8)]
    ref = tiny.embed_audio(ref_wavs)
    single = tiny.embed_audio([wavs[0]], reference=ref_wavs)
    np.testing.assert_allclose(single, _ref_center(plain[:1].tolist(), ref.tolist()), atol=1e-5)
    # score and classify see the same centred embeddings
    text = tiny.embed_text(["a calm voice", "a fast voice"])
    np.testing.assert_allclose(tiny.score(wavs, ["a calm voice", "a fast voice"], center="collection"),
                               tiny.embed_audio(wavs, center="collection") @ text.T, atol=1e-5)
    ranked = tiny.classify(wavs, ["calm", "fast"], center="speaker", speakers=speakers)
    assert len(ranked) == 5
    with pytest.raises(InputError, match="one speaker id per clip"):
        tiny.embed_audio(wavs, center="speaker", speakers=["x"])  # checked before anything is embedded


def test_bad_items_are_left_out_of_the_mean(tiny, tmp_path):
    wavs = [tone(0.6, 120 + 40 * i, seed=i) for i in range(3)]
    bad = tmp_path / "missing.wav"
    res = tiny.embed_audio_report([wavs[0], str(bad), wavs[1], wavs[2]], center="collection")
    assert res.indices == [0, 2, 3] and res.errors[0][0] == 1
    good = tiny.embed_audio(wavs, center="collection")
    np.testing.assert_allclose(res.embeddings, good, atol=1e-5)
    assert res.centering.mode == "collection"


@pytest.fixture()
def cli(capsys):
    """Run the CLI in this process: ``cli(*argv)`` -> (returncode, stdout, stderr)."""
    from types import SimpleNamespace

    from paraspeechclap.cli.main import main

    def run(*argv: str) -> SimpleNamespace:
        rc = main(list(argv))
        captured = capsys.readouterr()
        return SimpleNamespace(returncode=rc, stdout=captured.out, stderr=captured.err)

    return run


def _manifest(tmp_path, rows: list[dict]) -> str:
    import soundfile as sf

    (tmp_path / "test").mkdir(exist_ok=True)  # audio lives at <root>/<source>/<relative_audio_path>
    for i, r in enumerate(rows):
        sf.write(tmp_path / "test" / r["relative_audio_path"], tone(0.5 + 0.1 * i, 100 + 35 * i, seed=i), 16000)
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _rows(emotions: list[str]) -> list[dict]:
    return [{"source": "test", "relative_audio_path": f"c{i}.wav", "speaker": f"s{i % 2}", "emotion": e,
             "text_description": f"A person speaks, clip {i}."} for i, e in enumerate(emotions)]


def test_evaluate_classification_centring_never_reads_labels(tiny_dir, tmp_path, cli):
    """Changing the gold labels (even to ones that are no candidate, excluding rows) leaves the
    centred scores of the scored rows as they were: the mean is over every row."""
    emotions = ["angry", "happy", "neutral", "angry", "saddened", "neutral"]
    out = {}
    for name, labels in (("a", emotions), ("b", ["angry", "bored", "neutral", "angry", "bored", "neutral"])):
        d = tmp_path / name
        d.mkdir()
        m = _manifest(d, _rows(labels))
        r = cli("evaluate", "classification", "--manifest", m, "--attribute", "emotion", "--model", str(tiny_dir),
                "--out", str(d / "rep"), "--center", "speaker", "--precision", "fp32", "--json")
        assert r.returncode == 0, r.stderr
        metrics = json.loads(r.stdout)
        assert metrics["centering"]["mode"] == "speaker" and metrics["centering"]["labels_read"] is False
        preds = [json.loads(x) for x in (d / "rep" / "predictions.jsonl").read_text().splitlines()]
        out[name] = {p["index"]: {t["label"]: t["score"] for t in p["top"]} for p in preds if p["top"]}
    assert sorted(out["b"]) == [0, 2, 3, 5]  # "bored" is no candidate: rows 1 and 4 excluded
    for i in (0, 2, 3, 5):  # the rows scored in both
        assert out["a"][i] == pytest.approx(out["b"][i], abs=2e-6)
    assert metrics["centering"]["speaker_prior"] == 0.0 and "shrunk" not in metrics["centering"]["mean_over"]
    r = cli("evaluate", "classification", "--manifest", m, "--attribute", "emotion", "--model", str(tiny_dir),
            "--out", str(tmp_path / "rep_prior"), "--center", "speaker", "--speaker-prior", "2", "--precision", "fp32",
            "--json")
    assert r.returncode == 0, r.stderr
    centering = json.loads(r.stdout)["centering"]
    assert centering["speaker_prior"] == 2.0
    assert "shrunk towards the mean of all rows by 2 clips" in centering["mean_over"]


def test_cli_records_the_centring_and_rejects_speaker_mode_without_ids(tiny_dir, tmp_path, cli, capsys):
    import soundfile as sf

    clips = []
    for i in range(3):
        p = tmp_path / f"c{i}.wav"
        sf.write(p, tone(0.6, 120 + 50 * i, seed=i), 16000)
        clips.append(str(p))
    r = cli("score", *clips, "--text", "a calm voice", "--model", str(tiny_dir), "--center", "collection", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["center"] == {"mode": "collection", "speaker_field": None, "reference": [],
                                              "head": "main", "speaker_prior": None}
    r = cli("classify", clips[0], "--candidates", "calm", "fast", "--model", str(tiny_dir),
            "--reference", clips[1], clips[2], "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["center"]["reference"] == clips[1:]
    r = cli("classify", *clips, "--candidates", "calm", "fast", "--model", str(tiny_dir), "--center", "speaker")
    assert r.returncode == 2 and "--center speaker needs speaker ids" in r.stderr
    assert "Traceback" not in r.stderr
    r = cli("score", clips[0], "--text", "x", "--model", str(tiny_dir), "--center", "collection")
    assert r.returncode == 2 and "at least 2 clips" in r.stderr
    out = tmp_path / "e.npy"
    m = _manifest(tmp_path, _rows(["angry", "happy", "neutral", "angry"]))
    r = cli("embed", "--manifest", m, "--out", str(out), "--model", str(tiny_dir), "--center", "speaker")
    assert r.returncode == 0, r.stderr
    ids = json.loads((tmp_path / "e.ids.json").read_text())
    assert ids["center"]["mode"] == "speaker" and ids["center"]["speaker_field"] == "speaker"
    assert ids["center"]["speaker_prior"] == 0.0  # the tiny model's own
    plain = np.load(out)
    r = cli("embed", "--manifest", m, "--out", str(out), "--model", str(tiny_dir), "--center", "speaker",
            "--speaker-prior", "3")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "e.ids.json").read_text())["center"]["speaker_prior"] == 3.0
    assert not np.allclose(np.load(out), plain, atol=1e-4)  # the prior moves the centred embeddings
    with pytest.raises(SystemExit) as exc:  # argparse's one-line usage error
        cli("embed", "--manifest", m, "--out", str(out), "--model", str(tiny_dir), "--center", "speaker",
            "--speaker-prior", "-1")
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--speaker-prior: must be a finite number >= 0" in err and "Traceback" not in err


def test_rerank_scores_centre_every_candidate_on_the_reference(tiny):
    from paraspeechclap.reranking import StyleScorer

    cands = [tone(0.7, 100 + 60 * i, seed=i) for i in range(4)]
    ref = [tone(1.0, 150, seed=7), tone(0.9, 210, seed=6)]
    prompt = "a deep voice, speaking slowly"
    got = StyleScorer(tiny, reference=ref).score(prompt, cands).scores
    text = tiny.embed_text([prompt])[0]
    expected = np.array(_ref_center(tiny.embed_audio(cands).tolist(), tiny.embed_audio(ref).tolist())) @ text
    np.testing.assert_allclose(got, expected, atol=1e-5)
    plain = StyleScorer(tiny).score(prompt, cands).scores
    assert not np.allclose(got, plain, atol=1e-3)  # the reference changes the scores


def test_speaker_mode_names_the_manifest_row_without_a_speaker(tiny_dir, tmp_path, cli):
    rows = _rows(["angry", "happy", "neutral", "angry"])
    del rows[2]["speaker"]
    m = _manifest(tmp_path, rows)
    for argv in (("embed", "--manifest", m, "--out", str(tmp_path / "e.npy")),
                 ("evaluate", "classification", "--manifest", m, "--attribute", "emotion", "--out", str(tmp_path / "r"))):
        r = cli(*argv, "--model", str(tiny_dir), "--center", "speaker")
        assert r.returncode == 2
        assert "1 row(s) have no 'speaker' field, e.g. test/c2.wav" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "e.npy").exists()
