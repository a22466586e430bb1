"""``paraspeechclap evaluate`` on the tiny model: report files checked against an independent recomputation.

The reference embeds each clip and caption directly with the same model (in manifest order, no
sorting) and ranks / classifies with plain Python, so these tests catch order mix-ups in the
duration-sorted embedding, de-duplication errors and wrong gold-label handling in the glue code.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from paraspeechclap.testing import tone

CAPTIONS = ["A deep voice.", "A high voice.", "A deep voice.", "A fast talker.", "A calm voice."]
TAGS = ["deep", "shrill", "deep", "zzz", None]  # zzz: not a candidate; None: no label
EMOTIONS = ["anger", "joy", "sad", "anger", "fear"]  # raw corpus spellings, mapped by the label maps
DURATIONS = [(0.7, 110.0), (1.6, 330.0), (0.9, 120.0), (1.2, 220.0), (0.5, 180.0)]


@pytest.fixture()
def dataset(tmp_path):
    root = tmp_path / "audio"
    (root / "corpus").mkdir(parents=True)
    rows = []
    for i, (sec, f0) in enumerate(DURATIONS):
        sf.write(root / "corpus" / f"c{i}.wav", tone(sec, f0, seed=i), 16000)
        row = {"source": "corpus", "relative_audio_path": f"c{i}.wav", "text_description": CAPTIONS[i],
               "emotion": EMOTIONS[i], "duration": sec}
        if TAGS[i] is not None:
            row["classification_tag"] = TAGS[i]
        rows.append(row)
    manifest = tmp_path / "eval.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest, root


@pytest.fixture(scope="module")
def reference_model(tiny_dir):
    from paraspeechclap.pretrained import load_model

    return load_model(tiny_dir, device="cpu")


def _run(capsys, argv):
    from paraspeechclap.cli.main import main

    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _paths(root):
    return [str(root / "corpus" / f"c{i}.wav") for i in range(len(CAPTIONS))]


def test_retrieval_report(tmp_path, dataset, tiny_dir, reference_model, capsys):
    manifest, root = dataset
    out = tmp_path / "ret"
    rc, stdout, _ = _run(capsys, ["evaluate", "retrieval", "--manifest", str(manifest), "--audio-root", str(root),
                                  "--out", str(out), "--model", str(tiny_dir), "--device", "cpu", "--json"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert json.loads(stdout) == metrics

    unique = ["A deep voice.", "A high voice.", "A fast talker.", "A calm voice."]
    audio = reference_model.embed_audio(_paths(root))
    text = reference_model.embed_text(unique)
    sim = audio @ text.T
    ranks = []
    for i, cap in enumerate(CAPTIONS):
        order = sorted(range(len(unique)), key=lambda j: (-sim[i, j], j))
        ranks.append(order.index(unique.index(cap)) + 1)

    assert metrics["data"]["clips"] == 5 and metrics["data"]["unique_captions"] == 4
    assert metrics["model"]["id"] == reference_model.model_id
    assert metrics["model"]["checksum"] == reference_model.checksum
    a2t = metrics["audio_to_text"]
    assert a2t["R@1"] == pytest.approx(sum(r == 1 for r in ranks) / 5)
    assert a2t["median_rank"] == sorted(ranks)[2]
    assert a2t["mean_rank"] == pytest.approx(np.mean(ranks))
    assert metrics["text_to_audio"]["count"] == 4
    for key in ("R@1", "R@5", "R@10"):
        assert 0.0 <= a2t[key] <= 1.0 and 0.0 <= metrics["text_to_audio"][key] <= 1.0
    assert len(metrics["recall_curve"]["audio_to_text"]) == 4 and metrics["recall_curve"]["audio_to_text"][-1] == 1.0

    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["path"] for p in preds] == _paths(root)  # manifest order despite duration sorting
    assert [p["rank"] for p in preds] == ranks
    assert [p["caption"] for p in preds] == CAPTIONS
    for p, row in zip(preds, sim):
        assert p["top"][0]["score"] == pytest.approx(row.max(), abs=1e-5)
    assert "audio → text" in (out / "metrics.md").read_text()
    assert (out / "recall_at_k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _class_reference(model, paths, prompts_per_class):
    classes = []
    for prompts in prompts_per_class:
        e = model.embed_text(prompts)
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        m = e.mean(axis=0)
        classes.append(m / np.linalg.norm(m))
    return model.embed_audio(paths) @ np.stack(classes).T


def test_classification_official_set(tmp_path, dataset, tiny_dir, reference_model, capsys):
    manifest, root = dataset
    out = tmp_path / "cls"
    rc, _, _ = _run(capsys, ["evaluate", "classification", "--manifest", str(manifest), "--audio-root", str(root),
                             "--attribute", "pitch", "--out", str(out), "--model", str(tiny_dir), "--device", "cpu"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    candidates = ["shrill", "nasal", "deep"]
    assert m["protocol"]["candidates"] == candidates and m["labels"] == ["deep", "nasal", "shrill"]
    assert m["protocol"]["template"] == "A person is speaking in a {} style."
    assert (m["count"], m["excluded"], m["excluded_labels"], m["data"]["no_label"]) == (3, 1, {"zzz": 1}, 1)

    scores = _class_reference(reference_model, _paths(root)[:3],
                              [[f"A person is speaking in a {c} style."] for c in candidates])
    pred = [candidates[int(np.argmax(s))] for s in scores]
    gold = TAGS[:3]
    assert m["accuracy"] == pytest.approx(sum(p == g for p, g in zip(pred, gold)) / 3)
    recalls = [sum(p == g == c for p, g in zip(pred, gold)) / max(1, gold.count(c)) for c in ["deep", "nasal", "shrill"]]
    assert m["uar"] == pytest.approx(sum(recalls) / 3)  # nasal is absent from gold: counts as 0
    assert np.sum(m["confusion_matrix"]) == 3

    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["status"] for p in preds] == ["evaluated", "evaluated", "evaluated", "excluded", "no_label"]
    assert [p["predicted"] for p in preds[:3]] == pred and preds[3]["predicted"] is None
    assert preds[3]["gold"] == "zzz"
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "UAR" in (out / "metrics.md").read_text()


def test_classification_candidates_label_field_ensemble(tmp_path, dataset, tiny_dir, reference_model, capsys):
    manifest, root = dataset
    out = tmp_path / "emo"
    argv = ["evaluate", "classification", "--manifest", str(manifest), "--audio-root", str(root),
            "--candidates", "angry", "happy", "saddened", "--label-field", "emotion", "--ensemble", "--drop-unmatched",
            "--out", str(out), "--model", str(tiny_dir), "--device", "cpu"]
    rc, _, err = _run(capsys, argv)
    assert rc == 0
    assert "1 clips excluded" in err and "scared (1)" in err  # dropped on request, and said so
    m = json.loads((out / "metrics.json").read_text())
    assert m["protocol"]["unmatched_gold"].startswith("excluded")
    prompts = m["protocol"]["prompts"]
    assert m["protocol"]["ensemble"] is True and all(len(prompts[c]) > 1 for c in ("angry", "happy", "saddened"))
    # anger -> angry, joy -> happy, sad -> saddened (label maps); fear -> scared is not a candidate
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["gold"] for p in preds] == ["angry", "happy", "saddened", "angry", "scared"]
    assert m["excluded_labels"] == {"scared": 1} and m["count"] == 4
    scores = _class_reference(reference_model, _paths(root)[:4], [prompts[c] for c in ("angry", "happy", "saddened")])
    ref_pred = [("angry", "happy", "saddened")[int(np.argmax(s))] for s in scores]
    assert [p["predicted"] for p in preds[:4]] == ref_pred
    for p, s in zip(preds[:4], scores):
        assert p["top"][0]["score"] == pytest.approx(float(s.max()), abs=1e-5)

    # deterministic: a second run gives the same numbers
    out2 = tmp_path / "emo2"
    assert _run(capsys, argv[:-6] + ["--out", str(out2)] + argv[-4:])[0] == 0
    m2 = json.loads((out2 / "metrics.json").read_text())
    assert {k: m2[k] for k in ("accuracy", "uar", "macro_f1", "confusion_matrix")} == \
        {k: m[k] for k in ("accuracy", "uar", "macro_f1", "confusion_matrix")}


def test_errors_exit_2(tmp_path, dataset, tiny_dir, capsys):
    manifest, root = dataset
    common = ["--model", str(tiny_dir), "--device", "cpu", "--out", str(tmp_path / "o")]
    rc, _, err = _run(capsys, ["evaluate", "classification", "--manifest", str(manifest), "--audio-root", str(root),
                               "--candidates", "purple", "green", *common])
    assert rc == 2 and "no row has a gold label" in err
    rc, _, err = _run(capsys, ["evaluate", "retrieval", "--manifest", str(manifest),
                               "--audio-root", str(tmp_path / "nowhere"), *common])
    assert rc == 2 and "corpus/c" in err and "not found" in err
    rc, _, err = _run(capsys, ["evaluate", "classification", "--manifest", str(manifest), "--audio-root", str(root),
                               "--attribute", "no-such-set", *common])
    assert rc == 2 and "unknown attribute set" in err


def _emotion_argv(manifest, root, out, tiny_dir, *candidates):
    return ["evaluate", "classification", "--manifest", str(manifest), "--audio-root", str(root),
            "--candidates", *candidates, "--label-field", "emotion", "--out", str(out),
            "--model", str(tiny_dir), "--device", "cpu"]


def test_candidates_go_through_the_label_map_like_gold_labels(tmp_path, dataset, tiny_dir, reference_model, capsys):
    """--candidates sad ... with gold 'sad': both become 'saddened'; the prompts keep the words as given."""
    manifest, root = dataset
    out = tmp_path / "mapped"
    words = ["anger", "joy", "sad", "fear"]  # corpus spellings, as in the manifest
    rc, _, err = _run(capsys, _emotion_argv(manifest, root, out, tiny_dir, *words))
    assert rc == 0
    assert "anger -> angry" in err and "sad -> saddened" in err
    m = json.loads((out / "metrics.json").read_text())
    labels = ["angry", "happy", "saddened", "scared"]
    assert m["protocol"]["candidates"] == labels
    assert m["protocol"]["phrases"] == dict(zip(labels, words))  # which candidate text was used
    assert m["protocol"]["prompts"]["saddened"] == ["A person is speaking in a sad style."]
    assert (m["count"], m["excluded"], m["data"]["no_label"]) == (5, 0, 0)
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["gold"] for p in preds] == ["angry", "happy", "saddened", "angry", "scared"]
    scores = _class_reference(reference_model, _paths(root), [[f"A person is speaking in a {w} style."] for w in words])
    assert [p["predicted"] for p in preds] == [labels[int(np.argmax(s))] for s in scores]


def test_unmatched_gold_labels_stop_before_the_model_loads(tmp_path, dataset, tiny_dir, capsys):
    manifest, root = dataset
    out = tmp_path / "unmatched"
    rc, stdout, err = _run(capsys, _emotion_argv(manifest, root, out, tiny_dir, "sad", "joy"))
    assert rc == 2 and stdout == ""
    assert err.strip().splitlines() == [(
        "error: 3 clips have gold 'emotion' labels that match no candidate: angry (2, as 'anger'), "
        "scared (1, as 'fear'); add them to --candidates, or pass --drop-unmatched to exclude these clips "
        "(or filter the manifest)")]
    assert not out.exists()

    rc, _, err = _run(capsys, _emotion_argv(manifest, root, out, tiny_dir, "sad", "joy") + ["--drop-unmatched"])
    assert rc == 0 and "3 clips excluded" in err and "angry (2)" in err
    m = json.loads((out / "metrics.json").read_text())
    assert (m["count"], m["excluded"], m["excluded_labels"]) == (2, 3, {"angry": 2, "scared": 1})
    assert m["protocol"]["unmatched_gold"].startswith("excluded")


def test_unmatched_labels_without_a_vocabulary_word_are_marked(tmp_path, dataset, tiny_dir, capsys):
    """A gold spelling that the label map does not know cannot become a candidate: the error says so."""
    manifest, root = dataset
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[4]["emotion"] = "frustrated"  # mapped to null in label_maps.json: no emotion value
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rc, _, err = _run(capsys, _emotion_argv(manifest, root, tmp_path / "o", tiny_dir, "anger", "joy", "sad"))
    assert rc == 2 and "1 clip has gold 'emotion' labels" in err
    assert "frustrated (1, not in the emotion vocabulary)" in err


def test_candidates_that_map_to_one_label_are_refused(tmp_path, dataset, tiny_dir, capsys):
    manifest, root = dataset
    rc, _, err = _run(capsys, _emotion_argv(manifest, root, tmp_path / "o", tiny_dir, "sad", "joy", "saddened"))
    assert rc == 2 and "'sad' and 'saddened' are the same emotion label 'saddened'" in err


def test_reports_record_the_precision_and_why(tmp_path, dataset, tiny_dir, capsys, monkeypatch):
    """A saved (non-official) model keeps the auto default; --precision is recorded as given."""
    from paraspeechclap import inference

    monkeypatch.delenv("PARASPEECHCLAP_AUTO_PRECISION", raising=False)
    monkeypatch.setattr(inference, "cpu_has_bf16", lambda *a: True)
    manifest, root = dataset
    base = ["--manifest", str(manifest), "--audio-root", str(root), "--model", str(tiny_dir), "--device", "cpu"]
    rc, stdout, _ = _run(capsys, ["evaluate", "retrieval", *base, "--out", str(tmp_path / "r")])
    assert rc == 0 and "precision bf16 (auto (default for non-official models): bf16 on this device)" in stdout
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["model"]["precision"] == "bf16"
    assert m["model"]["precision_source"] == "auto (default for non-official models): bf16 on this device"
    assert "precision bf16" in (tmp_path / "r" / "metrics.md").read_text()

    rc, _, _ = _run(capsys, ["evaluate", "classification", *base, "--attribute", "pitch", "--precision", "fp32",
                             "--out", str(tmp_path / "c")])
    assert rc == 0
    m = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert (m["model"]["precision"], m["model"]["precision_source"]) == ("fp32", "--precision fp32")
    assert "precision fp32 (--precision fp32)" in (tmp_path / "c" / "metrics.md").read_text()
