"""Temperature scaling, ECE, the calibration record and ``paraspeechclap calibrate``.

The metric functions are checked against plain-numpy / plain-loop references written here; the
CLI is checked on the tiny model against an independent recomputation of its logits
(``logit_scale * cosine`` with the prompt-ensemble class embeddings, clips in manifest order).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from paraspeechclap import calibration as cal
from paraspeechclap.errors import InputError
from paraspeechclap.testing import tone

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- references ----------------------------------------------------------------------------------
def _nll_ref(logits, labels):
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -np.mean([logp[i, y] for i, y in enumerate(labels)])


def _ece_ref(probs, labels, bins):
    """Plain loop: bin b holds confidences in (edges[b], edges[b+1]], the first bin also 0."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    n = len(labels)
    total = 0.0
    for b in range(bins):
        members = []
        for i in range(n):
            c = max(probs[i])
            if edges[b] < c <= edges[b + 1] or (b == 0 and c == 0.0):
                members.append(i)
        if not members:
            continue
        acc = sum(int(np.argmax(probs[i]) == labels[i]) for i in members) / len(members)
        conf = sum(max(probs[i]) for i in members) / len(members)
        total += len(members) / n * abs(acc - conf)
    return total


def _toy(n=4000, c=5, seed=0):
    """True logits and labels drawn from their softmax: temperature 1 is calibrated by construction."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, size=(n, c))
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(c, p=row) for row in p])
    return z, labels


# -- temperature ---------------------------------------------------------------------------------
@pytest.mark.parametrize("factor", [3.0, 0.5])
def test_fit_temperature_matches_grid_search(factor):
    z, labels = _toy()
    logits = factor * z  # over-confident (3) or under-confident (0.5) by a known factor
    t = cal.fit_temperature(logits, labels)
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 1501))
    nlls = np.array([_nll_ref(logits / g, labels) for g in grid])
    step = np.log(grid[1]) - np.log(grid[0])
    assert abs(np.log(t) - np.log(grid[np.argmin(nlls)])) <= step
    assert _nll_ref(logits / t, labels) <= nlls.min() + 1e-9
    assert t == pytest.approx(factor, rel=0.08)  # recovers the factor the logits were inflated by
    assert cal.negative_log_likelihood(logits, labels, t) == pytest.approx(_nll_ref(logits / t, labels))


def test_fit_temperature_scales_with_logits():
    z, labels = _toy(n=800, seed=1)
    t = cal.fit_temperature(z, labels)
    assert cal.fit_temperature(7.0 * z, labels) == pytest.approx(7.0 * t, rel=1e-4)


def test_fit_temperature_bounds():
    # every clip right: sharper is always better, so the search stops at T_MIN ...
    logits = np.array([[0.5, 0.0], [0.0, 0.5]] * 5)  # margin / T_MIN = 500: exp(-500) is still > 0
    labels = np.array([0, 1] * 5)
    t = cal.fit_temperature(logits, labels)
    assert t == pytest.approx(cal.T_MIN, rel=1e-3) and cal.at_bound(t)
    # ... every clip wrong: flatter is always better, up to T_MAX
    t = cal.fit_temperature(logits, 1 - labels)
    assert t == pytest.approx(cal.T_MAX, rel=1e-3) and cal.at_bound(t)
    assert not cal.at_bound(1.0)
    with pytest.raises(ValueError):
        cal.fit_temperature(logits, labels[:3])
    with pytest.raises(ValueError):
        cal.fit_temperature(logits, labels + 5)


def test_apply():
    z, _ = _toy(n=50, seed=2)
    p = cal.apply(z, 2.0)
    ref = np.exp(z / 2.0) / np.exp(z / 2.0).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p, ref, rtol=1e-12)
    np.testing.assert_array_equal(p.argmax(axis=1), z.argmax(axis=1))  # ranking unchanged
    np.testing.assert_allclose(cal.apply(1000.0 * z, 1.0).sum(axis=1), 1.0)  # no overflow
    with pytest.raises(ValueError):
        cal.apply(z, 0.0)


# -- ECE -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("bins", [15, 10, 3])
def test_ece_matches_loop_reference(bins):
    rng = np.random.default_rng(bins)
    probs = rng.dirichlet(np.full(4, 0.7), size=300)
    labels = np.where(rng.random(300) < 0.6, probs.argmax(axis=1), rng.integers(0, 4, 300))
    assert cal.expected_calibration_error(probs, labels, bins) == pytest.approx(_ece_ref(probs, labels, bins),
                                                                                abs=1e-12)


def test_ece_hand_cases():
    # conf 0.8: 8 of 10 right; conf 0.6: 3 of 5 right -> every bin's accuracy equals its confidence
    probs = np.array([[0.8, 0.2]] * 10 + [[0.4, 0.6]] * 5)
    labels = np.array([0] * 8 + [1] * 2 + [1] * 3 + [0] * 2)
    assert cal.expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)
    # confident and always wrong
    wrong = np.array([[0.999, 0.001]] * 6)
    assert cal.expected_calibration_error(wrong, np.ones(6, dtype=int)) == pytest.approx(0.999)
    # bin convention (lo, hi]: with 2 bins, 0.5 falls in the first bin and 1.0 in the last
    counts, acc, conf = cal.bin_stats(np.array([[0.5, 0.5], [1.0, 0.0], [0.7, 0.3]]), np.array([0, 1, 0]), bins=2)
    assert counts.tolist() == [1, 2]
    np.testing.assert_allclose(acc, [1.0, 0.5])
    np.testing.assert_allclose(conf, [0.5, 0.85])


# -- held-out folds ------------------------------------------------------------------------------
def test_fold_indices_keep_groups_together():
    groups = ["a"] * 5 + ["b"] * 2 + ["c"] * 3 + ["d"] * 4 + ["e"]
    folds = cal.fold_indices(len(groups), 3, groups)
    assert len(folds) == 3
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(groups)))  # a partition
    for g in set(groups):
        assert sum(any(groups[i] == g for i in f) for f in folds) == 1  # a group never spans folds
    assert [f.tolist() for f in folds] == [f.tolist() for f in cal.fold_indices(len(groups), 3, groups)]
    assert len(cal.fold_indices(len(groups), 10, groups)) == 5  # no more folds than groups
    assert len(cal.fold_indices(7, 5)) == 5  # by row
    with pytest.raises(ValueError):
        cal.fold_indices(4, 5, ["x"] * 4)


def test_cross_validated_logits_hold_out_the_fit():
    z, labels = _toy(n=200, seed=3)
    logits = 2.0 * z
    groups = [i // 10 for i in range(200)]
    scaled, temps = cal.cross_validated_logits(logits, labels, 4, groups)
    for held, t in zip(cal.fold_indices(200, 4, groups), temps):
        fit = np.setdiff1d(np.arange(200), held)
        assert t == pytest.approx(cal.fit_temperature(logits[fit], labels[fit]))
        np.testing.assert_allclose(scaled[held], logits[held] / t)


# -- the record ----------------------------------------------------------------------------------
def _record():
    return cal.Calibration("ab" * 32, "none", {"pitch_level": 1.7, "gender": 0.9},
                           metrics={"gender": {"before": {"ece": 0.2, "nll": 0.7}, "after": {"ece": 0.1, "nll": 0.6}}},
                           model_id="tiny", logit_scale=14.3, info={"x": [1, 2]})


def test_record_round_trip(tmp_path):
    rec = _record()
    path = rec.save(tmp_path / "cal" / "calibration.json")
    back = cal.Calibration.load(path)
    assert back == rec and back.source == str(path)
    assert json.loads(path.read_text()) == rec.to_dict() and "source" not in rec.to_dict()
    assert back.temperature("gender") == 0.9
    assert [p.name for p in path.parent.iterdir()] == ["calibration.json"]  # no temporary left behind
    with pytest.raises(InputError, match="no temperature for 'emotion'; it has: pitch_level, gender"):
        back.temperature("emotion")


def test_record_refuses_other_model_or_centring(tmp_path):
    path = _record().save(tmp_path / "calibration.json")
    rec = cal.Calibration.load(path)
    rec.check("ab" * 32, "none")  # same model and centring: fine
    with pytest.raises(InputError) as exc:
        rec.check("cd" * 32, "none")
    msg = str(exc.value)
    assert msg == (f"calibration {path} was fitted for model abababababab with center=none; "
                   "this run uses model cdcdcdcdcdcd with center=none")
    with pytest.raises(InputError, match="with center=none; this run uses model abababababab with center=speaker"):
        rec.check("ab" * 32, "speaker")
    with pytest.raises(InputError, match="<no checksum>"):  # an unidentified model is never accepted
        cal.Calibration("", "none", {}).check("", "none")
    assert cal.center_key("collection", ["r.wav"]) == "collection+reference"


def test_record_load_errors(tmp_path):
    with pytest.raises(InputError, match="calibration not found"):
        cal.Calibration.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not a calibration file"):
        cal.Calibration.load(bad)
    bad.write_text(json.dumps({**_record().to_dict(), "version": 99}))
    with pytest.raises(InputError, match="format version 99"):
        cal.Calibration.load(bad)


def test_reliability_diagram_png(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=40)
    labels = rng.integers(0, 3, 40)
    path = cal.reliability_diagram(probs, labels, tmp_path / "r.png", title="toy")
    assert path.read_bytes()[:8] == PNG_MAGIC
    two = cal.reliability_diagrams({"before": probs, "after": cal.apply(np.log(probs), 2.0)}, labels,
                                   tmp_path / "r2.png")
    assert two.read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.png", "r2.png"]


def test_import_has_no_side_effects():
    code = "import sys, paraspeechclap.calibration; print(any(m.startswith('matplotlib') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the CLI -------------------------------------------------------------------------------------
LEVELS = {"deep": 110.0, "medium": 180.0, "high-pitched": 300.0}


@pytest.fixture()
def labelled(tmp_path):
    """12 tones, 4 speakers of 3 clips; pitch_level and gender labels."""
    root = tmp_path / "audio"
    (root / "c").mkdir(parents=True)
    rows = []
    for i in range(12):
        label = list(LEVELS)[i % 3]
        sf.write(root / "c" / f"x{i}.wav", tone(0.5 + 0.05 * i, LEVELS[label] + 5 * i, seed=i), 16000)
        rows.append({"source": "c", "relative_audio_path": f"x{i}.wav", "text_description": "a voice",
                     "pitch_level": label, "gender": "male" if i % 2 else "female", "speaker": f"s{i // 3}"})
    manifest = tmp_path / "labelled.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest, root


@pytest.fixture(scope="module")
def reference_model(tiny_dir):
    from paraspeechclap.pretrained import load_model

    return load_model(tiny_dir, device="cpu", precision="fp32")


def _run(capsys, argv):
    from paraspeechclap.cli.main import main

    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _reference_logits(model, root, set_name):
    """logit_scale * cosine against the class prompt ensembles, computed directly, manifest order."""
    from paraspeechclap.data.attributes import get_attribute_set

    aset = get_attribute_set(set_name)
    classes = []
    for prompts in aset.prompts(ensemble=True).values():
        e = model.embed_text(prompts)
        m = (e / np.linalg.norm(e, axis=1, keepdims=True)).mean(axis=0)
        classes.append(m / np.linalg.norm(m))
    audio = model.embed_audio([str(root / "c" / f"x{i}.wav") for i in range(12)])
    return float(model.logit_scale.detach()) * (audio @ np.stack(classes).T).astype(np.float64)


def test_calibrate_cli(tmp_path, labelled, tiny_dir, reference_model, capsys):
    manifest, root = labelled
    out = tmp_path / "cal"
    rc, stdout, _ = _run(capsys, ["calibrate", "--manifest", str(manifest), "--audio-root", str(root), "--out",
                                  str(out), "--attributes", "pitch_level", "gender", "--model", str(tiny_dir),
                                  "--device", "cpu", "--precision", "fp32", "--json"])
    assert rc == 0
    data = json.loads((out / "calibration.json").read_text())
    assert json.loads(stdout) == data
    rec = cal.Calibration.load(out / "calibration.json")
    rec.check(reference_model.checksum, "none")
    assert rec.model_checksum == reference_model.checksum and rec.center == "none"
    assert set(rec.temperatures) == {"pitch_level", "gender"}
    for name, candidates in (("pitch_level", list(LEVELS)), ("gender", ["male", "female"])):
        m = rec.metrics[name]
        assert rec.temperatures[name] > 0
        assert m["rows"] == 12 and m["held_out"]["rows"] == 12
        assert m["held_out"]["scheme"] == "4-fold cross-validation by speaker"  # 4 speakers < 5 folds
        assert len(m["held_out"]["temperatures"]) == 4
        for when in ("before", "after"):
            assert 0.0 <= m[when]["ece"] <= 1.0 and m[when]["nll"] > 0
        # independent recomputation: the final T is fitted on every row; "before" is T = 1 on every row
        logits = _reference_logits(reference_model, root, name)
        labels = np.array([candidates.index(r[name]) for r in _rows(manifest)])  # both read the field of their name
        assert rec.temperatures[name] == pytest.approx(cal.fit_temperature(logits, labels), rel=1e-3)
        assert m["before"]["nll"] == pytest.approx(cal.negative_log_likelihood(logits, labels), rel=1e-5)
        assert m["accuracy"] == pytest.approx(np.mean(logits.argmax(axis=1) == labels))
        assert (out / f"reliability_{name}.png").read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(InputError, match="with center=none; this run uses .* with center=collection"):
        rec.check(reference_model.checksum, "collection")


def _rows(manifest):
    return [json.loads(line) for line in manifest.read_text().splitlines()]


def test_calibrate_cli_eval_manifest_and_default_sets(tmp_path, labelled, tiny_dir, reference_model, capsys):
    manifest, root = labelled
    out = tmp_path / "cal"
    rc, stdout, _ = _run(capsys, ["calibrate", "--manifest", str(manifest), "--audio-root", str(root), "--out",
                                  str(out), "--eval-manifest", str(manifest), "--model", str(tiny_dir),
                                  "--device", "cpu", "--precision", "fp32"])
    assert rc == 0 and "ECE before" in stdout and "pitch_level" in stdout
    rec = cal.Calibration.load(out / "calibration.json")
    assert set(rec.temperatures) == {"pitch_level", "gender"}  # the sets this manifest labels
    m = rec.metrics["pitch_level"]
    assert m["held_out"]["scheme"].startswith("--eval-manifest")
    logits = _reference_logits(reference_model, root, "pitch_level")
    labels = np.array([list(LEVELS).index(r["pitch_level"]) for r in _rows(manifest)])
    t = rec.temperatures["pitch_level"]
    assert m["after"]["nll"] == pytest.approx(cal.negative_log_likelihood(logits, labels, t), rel=1e-4)
    assert m["after"]["nll"] <= m["before"]["nll"] + 1e-9  # same rows as the fit: it can only improve
    assert sorted(p.name for p in out.iterdir()) == ["calibration.json", "reliability_gender.png",
                                                    "reliability_pitch_level.png"]


@pytest.mark.parametrize("extra, message", [
    (["--attributes", "no_such_set"], "unknown attribute set 'no_such_set'"),
    (["--attributes", "emotion"], "attribute set 'emotion': no row of"),
    (["--attributes", "pitch_level", "gender", "--label-field", "x"], "--label-field needs exactly one"),
    (["--eval-split", "test"], "--eval-split needs --eval-manifest"),
])
def test_calibrate_cli_errors(tmp_path, labelled, tiny_dir, capsys, extra, message):
    manifest, root = labelled
    rc, _, err = _run(capsys, ["calibrate", "--manifest", str(manifest), "--audio-root", str(root), "--out",
                               str(tmp_path / "cal"), "--model", str(tiny_dir), "--device", "cpu", *extra])
    assert rc == 2 and message in err
    assert err.startswith("error: ") and err.count("\n") == 1  # one line
    assert not (tmp_path / "cal").exists()


def test_calibrate_cli_missing_manifest(tmp_path, tiny_dir, capsys):
    rc, stdout, err = _run(capsys, ["calibrate", "--manifest", str(tmp_path / "nope.jsonl"), "--out",
                                    str(tmp_path / "cal"), "--model", str(tiny_dir), "--json"])
    assert rc == 2 and stdout == ""
    assert err == f"error: {tmp_path / 'nope.jsonl'}: manifest not found\n"
