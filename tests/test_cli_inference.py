"""CLI: score, classify, embed, models."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np


def _cli(*args):
    # fp32 as the API fixtures are (the default "auto" is bf16 on CPUs that compute it natively)
    precision = ["--precision", "fp32"] if "--model" in args else []
    return subprocess.run([sys.executable, "-m", "paraspeechclap", *args, *precision], capture_output=True, text=True)


def test_score_json_matches_the_api(tiny, tiny_dir, wav_files):
    r = _cli("score", *wav_files, "--text", "a deep voice", "--text", "a fast voice", "--model", str(tiny_dir), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["audio"] == wav_files and out["texts"] == ["a deep voice", "a fast voice"] and out["model"] == "tiny"
    np.testing.assert_allclose(out["scores"], tiny.score(wav_files, out["texts"]), atol=1e-5)
    table = _cli("score", *wav_files, "--text", "a deep voice", "--model", str(tiny_dir))
    assert table.returncode == 0 and wav_files[0] in table.stdout


def test_classify_json_is_ranked_best_first(tiny, tiny_dir, wav_files):
    cands = ["angry", "happy", "saddened", "neutral"]
    r = _cli("classify", *wav_files, "--candidates", *cands, "--model", str(tiny_dir), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    api = tiny.classify(wav_files, cands)
    assert [o["audio"] for o in out] == wav_files
    for o, ranked in zip(out, api):
        scores = [x["score"] for x in o["ranking"]]
        assert scores == sorted(scores, reverse=True)
        assert [x["label"] for x in o["ranking"]] == [lab for lab, _ in ranked]
    r = _cli("classify", wav_files[0], "--candidates", "deep", "high", "--template", "The voice is {}.",
             "--model", str(tiny_dir))
    assert r.returncode == 0 and "best" in r.stdout


def test_classify_attribute_scores_each_class_by_its_prompt_ensemble(tiny, tiny_dir, wav_files):
    from paraspeechclap.data.attributes import get_attribute_set

    r = _cli("classify", *wav_files, "--attribute", "gender", "--model", str(tiny_dir), "--json")
    assert r.returncode == 0, r.stderr
    aset = get_attribute_set("gender")
    prompts = aset.prompts(ensemble=True)
    # Hand-written reference: mean of the normalised prompt embeddings, renormalised; cosine to the clip.
    classes = []
    for c in aset.candidates:
        e = tiny.embed_text(list(prompts[c]))
        e = (e / np.linalg.norm(e, axis=1, keepdims=True)).mean(0)
        classes.append(e / np.linalg.norm(e))
    sims = tiny.embed_audio(wav_files) @ np.stack(classes).T
    for o, row in zip(json.loads(r.stdout), sims):
        assert [x["label"] for x in o["ranking"]] == [aset.candidates[j] for j in np.argsort(-row, kind="stable")]
        np.testing.assert_allclose([x["score"] for x in o["ranking"]], np.sort(row)[::-1], atol=2e-6)


def test_embed_writes_npy_and_ids_with_skip_bad(tiny, tiny_dir, wav_files, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"junk")
    out = tmp_path / "emb.npy"
    r = _cli("embed", wav_files[0], str(bad), wav_files[1], "--out", str(out), "--model", str(tiny_dir), "--skip-bad")
    assert r.returncode == 0, r.stderr
    assert "bad.wav" in r.stderr
    emb = np.load(out)
    ids = json.loads((tmp_path / "emb.ids.json").read_text())
    assert ids["items"] == [wav_files[0], wav_files[1]] and ids["model"] == "tiny" and len(ids["checksum"]) == 64
    assert ids["skipped"][0]["item"] == str(bad)
    np.testing.assert_allclose(emb, tiny.embed_audio([wav_files[0], wav_files[1]]), atol=1e-6)
    # without --skip-bad the job fails and leaves no partial output behind
    out2 = tmp_path / "emb2.npy"
    r = _cli("embed", wav_files[0], str(bad), "--out", str(out2), "--model", str(tiny_dir))
    assert r.returncode == 2 and not out2.exists() and not list(tmp_path.glob(".emb2*"))


def test_embed_from_manifest(tiny, tiny_dir, wav_files, tmp_path):
    from pathlib import Path

    root = Path(wav_files[0]).parent
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"source": ".", "relative_audio_path": Path(w).name}) + "\n"
                                for w in wav_files))
    out = tmp_path / "m.npy"
    r = _cli("embed", "--manifest", str(manifest), "--audio-root", str(root), "--out", str(out), "--model", str(tiny_dir))
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(np.load(out), tiny.embed_audio(wav_files), atol=1e-6)


def test_models_lists_released_names():
    r = _cli("models", "--json")
    assert r.returncode == 0, r.stderr
    names = {m["name"] for m in json.loads(r.stdout)}
    assert {"lite", "intrinsic", "situational", "combined"} <= names
