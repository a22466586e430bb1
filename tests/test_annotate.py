"""``paraspeechclap annotate``: outputs, labels against a hand computation, centring independent of
sharding, resuming, calibration, and the output feeding ``data check``, ``train`` and ``datasets``.

Runs the tiny model (random backbones) in-process on synthetic tones; the labels it gives mean
nothing, but they must be exactly what its embeddings and the stated rules give.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from paraspeechclap.testing import tone

SETS = ["gender", "pitch_level", "emotion"]


@pytest.fixture()
def cli(capsys):
    from paraspeechclap.cli.main import main

    def run(*argv: str) -> SimpleNamespace:
        rc = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return SimpleNamespace(returncode=rc, stdout=captured.out, stderr=captured.err)

    return run


@pytest.fixture()
def corpus(tmp_path):
    """``corpus/clips``: 7 tones (two speakers' worth, 16 and 22.05 kHz) and one undecodable file;
    ``corpus/manifest.jsonl`` names them with speakers."""
    root = tmp_path / "corpus"
    clips = root / "clips"
    clips.mkdir(parents=True)
    rows = []
    for i in range(7):
        sr = 16000 if i % 2 == 0 else 22050
        sf.write(clips / f"c{i}.wav", tone(0.8 + 0.1 * i, 110.0 + 30 * i, sr=sr, seed=i), sr)
        rows.append({"source": "clips", "relative_audio_path": f"c{i}.wav", "speaker": f"s{i % 2}"})
    (clips / "c7_bad.wav").write_bytes(b"not audio")
    rows.insert(3, {"source": "clips", "relative_audio_path": "c7_bad.wav", "speaker": "s0"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _annotate(cli, tiny_dir, out, *extra):
    res = cli("annotate", *extra, "--out", out, "--model", tiny_dir, "--precision", "fp32",
              "--attributes", *SETS, "--no-progress")
    assert res.returncode == 0, res.stderr
    return res


def test_outputs_and_bad_clip(cli, tiny_dir, corpus, tmp_path):
    out = tmp_path / "out"
    _annotate(cli, tiny_dir, out, corpus / "clips", "--shard-size", "3")
    rows = _rows(out)
    names = sorted(p.name for p in (corpus / "clips").iterdir())
    good = [n for n in names if n != "c7_bad.wav"]
    assert [Path(r["relative_audio_path"]).name for r in rows] == good  # input order, bad clip left out
    assert [r["input_index"] for r in rows] == [names.index(n) for n in good]
    for r in rows:  # paths resolve from the manifest's folder (the clips are outside it: absolute)
        assert Path(r["relative_audio_path"]).is_absolute()
        assert (out / r["source"] / r["relative_audio_path"]).samefile(corpus / "clips" / Path(
            r["relative_audio_path"]).name)
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert len(errors) == 1 and errors[0]["audio"].endswith("c7_bad.wav") and "cannot decode" in errors[0]["error"]
    run = json.loads((out / "run.json").read_text())
    assert run["counts"]["inputs"] == 8 and run["counts"]["annotated"] == 7 and run["counts"]["errors"] == 1
    assert run["executor"]["shards_total"] == 3 and run["executor"]["shards_written"] == 3
    assert set(run["executor"]["stages"]) == {"decode", "measure", "embed", "write"}
    assert run["model"]["checksum"] and run["precision"] == "fp32" and run["centring_head"] == "main"
    assert len(list((out / "shards").glob("*.parquet"))) == 3


def test_labels_match_hand_computation(cli, tiny_dir, tiny, corpus, tmp_path):
    from paraspeechclap.audio.measure import measure
    from paraspeechclap.data.attributes import get_attribute_set
    from paraspeechclap.data.captions import describe
    from paraspeechclap.evaluation.classification import embed_class_prompts

    out = tmp_path / "out"
    _annotate(cli, tiny_dir, out, "--manifest", corpus / "manifest.jsonl", "--min-confidence", "0.55")
    rows = _rows(out)
    paths = [str(corpus / "clips" / f"c{i}.wav") for i in range(7)]
    emb = tiny.embed_audio(paths)
    scale = float(tiny.logit_scale.detach().float())
    for name in SETS:
        aset = get_attribute_set(name)
        classes = embed_class_prompts(tiny, aset.prompts(ensemble=True), aset.candidates)
        z = scale * (emb.astype(np.float64) @ classes.T.astype(np.float64))
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        for r, pr in zip(rows, p):
            got = [r["distributions"][name][c] for c in aset.candidates]
            np.testing.assert_allclose(got, pr, atol=1e-5)
            top = aset.candidates[int(pr.argmax())]
            assert r["labels"][name] == (top if pr.max() >= 0.55 else None)
            assert r["probabilities"][name] == pytest.approx(pr.max(), abs=1e-5)
    for r, path in zip(rows, paths):
        wav, sr = sf.read(path, dtype="float32")
        ref = measure(wav, sr)
        for key in ("active_level_dbfs", "f0_median_hz", "speaking_rate_syll_per_s", "snr_db", "duration_s"):
            assert r[key] == pytest.approx(ref[key]), key
        fields = {f: r[f] for f in ("gender", "pitch_level", "emotion") if r.get(f) is not None}
        assert r["text_description"][0] == describe(fields)  # the canonical caption of the confident labels
        assert len(set(r["text_description"])) == len(r["text_description"]) >= 1
    # the speaker reference F0: each speaker's median clip F0
    for spk in ("s0", "s1"):
        mine = [r for r in rows if r["speaker"] == spk]
        ref_f0 = np.median([r["f0_median_hz"] for r in mine])
        for r in mine:
            assert r["f0_semitones_re_speaker"] == pytest.approx(12 * np.log2(r["f0_median_hz"] / ref_f0))


@pytest.mark.parametrize("center, prior", [("collection", None), ("speaker", None), ("speaker", 3.0)])
def test_centring_does_not_depend_on_sharding(cli, tiny_dir, tiny, corpus, tmp_path, center, prior):
    runs = []
    flags = [] if prior is None else ["--speaker-prior", str(prior)]
    for size in ("2", "50"):
        out = tmp_path / f"out{size}"
        _annotate(cli, tiny_dir, out, "--manifest", corpus / "manifest.jsonl", "--center", center,
                  "--shard-size", size, *flags)
        runs.append(_rows(out))
    assert [r["labels"] for r in runs[0]] == [r["labels"] for r in runs[1]]
    assert [r["text_description"] for r in runs[0]] == [r["text_description"] for r in runs[1]]
    import pyarrow.parquet as pq

    table = pq.read_table(sorted((tmp_path / "out2" / "shards").glob("*.parquet")))
    paths = [str(corpus / "clips" / f"c{i}.wav") for i in range(7)]
    if prior is not None:  # the shards' centring equals the model's own with the same prior
        from paraspeechclap.testing import tiny_model

        tiny = tiny_model()
        tiny.set_speaker_prior(prior)
    ref = tiny.embed_audio(paths, center=center, speakers=[f"s{i % 2}" for i in range(7)])
    np.testing.assert_allclose(np.asarray(table.column("embedding").to_pylist()), ref, atol=1e-5)


def test_resume_and_nothing_twice(cli, tiny_dir, corpus, tmp_path):
    out = tmp_path / "out"
    _annotate(cli, tiny_dir, out, "--manifest", corpus / "manifest.jsonl", "--shard-size", "3")
    first = (out / "manifest.jsonl").read_text()
    # a job interrupted after its first shard: the others are missing, and no final outputs exist
    for p in sorted((out / "work").glob("part-*.parquet"))[1:]:
        p.unlink()
    for name in ("run.json", "manifest.jsonl"):
        (out / name).unlink()
    _annotate(cli, tiny_dir, out, "--manifest", corpus / "manifest.jsonl", "--shard-size", "3")
    run = json.loads((out / "run.json").read_text())
    assert run["executor"]["shards_done_before"] == 1 and run["executor"]["shards_written"] == 2
    assert (out / "manifest.jsonl").read_text() == first
    res = _annotate(cli, tiny_dir, out, "--manifest", corpus / "manifest.jsonl", "--shard-size", "3")
    assert "nothing to do" in res.stderr
    assert json.loads((out / "run.json").read_text())["executor"]["shards_written"] == 2  # not rewritten
    # changed labelling settings relabel from the stage shards without embedding again
    _annotate(cli, tiny_dir, out, "--manifest", corpus / "manifest.jsonl", "--shard-size", "3",
              "--min-confidence", "1")
    run = json.loads((out / "run.json").read_text())
    assert run["executor"]["shards_written"] == 0
    assert all(v is None for r in _rows(out) for v in r["labels"].values())


def test_a_new_speaker_prior_relabels_instead_of_keeping_the_old_run(cli, tiny_dir, corpus, tmp_path):
    out = tmp_path / "out"
    args = ("--manifest", corpus / "manifest.jsonl", "--center", "speaker", "--shard-size", "3")
    _annotate(cli, tiny_dir, out, *args)
    assert json.loads((out / "run.json").read_text())["labelling"]["speaker_prior"] == 0.0
    res = _annotate(cli, tiny_dir, out, *args, "--speaker-prior", "3")
    assert "nothing to do" not in res.stderr
    assert json.loads((out / "run.json").read_text())["labelling"]["speaker_prior"] == 3.0
    assert "nothing to do" in _annotate(cli, tiny_dir, out, *args, "--speaker-prior", "3").stderr


def test_plan_mismatch_and_bad_flags_are_one_line_errors(cli, tiny_dir, corpus, tmp_path):
    out = tmp_path / "out"
    _annotate(cli, tiny_dir, out, "--manifest", corpus / "manifest.jsonl", "--shard-size", "3")
    res = cli("annotate", corpus / "clips", "--out", out, "--model", tiny_dir, "--attributes", *SETS)
    assert res.returncode == 2 and "work/ was made with other inputs" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = cli("annotate", corpus / "clips", "--out", tmp_path / "o2", "--model", tiny_dir, "--attributes", "nope")
    assert res.returncode == 2 and "unknown attribute set 'nope'" in res.stderr
    assert not (tmp_path / "o2" / "work").exists()  # refused before any work
    res = cli("annotate", corpus / "clips", "--out", tmp_path / "o3", "--model", tiny_dir, "--center", "speaker")
    assert res.returncode == 2 and "speaker id" in res.stderr


def test_calibration_is_used_and_checked(cli, tiny_dir, corpus, tmp_path):
    from paraspeechclap.calibration import Calibration
    from paraspeechclap.pretrained import file_checksum

    checksum = file_checksum(tiny_dir / "model.safetensors")
    temps = {"gender": 4.0, "pitch_level": 0.5, "emotion": 2.0}
    Calibration(checksum, "none", temps).save(tmp_path / "cal" / "calibration.json")
    out, raw = tmp_path / "out", tmp_path / "raw"
    _annotate(cli, tiny_dir, raw, "--manifest", corpus / "manifest.jsonl")
    _annotate(cli, tiny_dir, out, "--manifest", corpus / "manifest.jsonl", "--calibration", tmp_path / "cal")
    for r0, r1 in zip(_rows(raw), _rows(out)):
        for name, t in temps.items():
            p0 = np.array(list(r0["distributions"][name].values()))
            expected = np.exp(np.log(p0) / t)
            np.testing.assert_allclose(list(r1["distributions"][name].values()), expected / expected.sum(),
                                       atol=1e-6)
    run = json.loads((out / "run.json").read_text())
    assert run["calibration"]["calibrated"] and run["calibration"]["temperatures"] == temps
    res = cli("annotate", "--manifest", corpus / "manifest.jsonl", "--out", tmp_path / "o4", "--model", tiny_dir,
              "--attributes", *SETS, "--calibration", tmp_path / "cal", "--center", "collection")
    assert res.returncode == 2 and "fitted for model" in res.stderr and "center=none" in res.stderr
    Calibration(checksum, "none", {"gender": 1.0}).save(tmp_path / "cal2.json")
    res = cli("annotate", "--manifest", corpus / "manifest.jsonl", "--out", tmp_path / "o5", "--model", tiny_dir,
              "--attributes", *SETS, "--calibration", tmp_path / "cal2.json")
    assert res.returncode == 2 and "no temperature for 'pitch_level'" in res.stderr


def test_output_feeds_data_check_datasets_and_train(cli, tiny_dir, corpus, tmp_path):
    import datasets

    out = tmp_path / "out"
    _annotate(cli, tiny_dir, out, corpus / "clips", "--shard-size", "3", "--min-confidence", "0")
    res = cli("data", "check", out / "manifest.jsonl")
    assert res.returncode == 0, res.stdout + res.stderr
    ds = datasets.load_dataset("parquet", data_files=sorted(str(p) for p in (out / "shards").glob("*.parquet")),
                               split="train")
    assert len(ds) == 7 and len(ds[0]["embedding"]) == 16
    assert ds[0]["relative_audio_path"] == _rows(out)[0]["relative_audio_path"]
    repo = Path(__file__).resolve().parents[1]
    res = cli("train", "--config", repo / "configs" / "train" / "tiny.yaml", "--set",
              f"train.output_dir={tmp_path / 'run'}", f"data.train_manifest={out / 'manifest.jsonl'}",
              f"data.dev_manifest={out / 'manifest.jsonl'}", "train.max_steps=2", "eval.every_steps=2",
              "train.checkpoint_every=2", "train.progress=false")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()


def test_output_paths_relative_inside_absolute_outside(tmp_path):
    from paraspeechclap.annotate.inputs import output_path_fields

    out = tmp_path / "ann"
    inside = out / "corpus" / "a" / "x.wav"
    assert output_path_fields(inside, "corpus", out) == {"source": "corpus", "relative_audio_path": "a/x.wav"}
    outside = tmp_path / "elsewhere" / "y.wav"
    got = output_path_fields(outside, "corpus", out)
    assert got["relative_audio_path"] == outside.as_posix() and (out / "corpus" / got["relative_audio_path"]) == outside


def test_shipped_calibration_matches_the_shipped_weights():
    from paraspeechclap.calibration import Calibration
    from paraspeechclap.pretrained import EMBEDDED_DIR, file_checksum

    cal = Calibration.load(EMBEDDED_DIR / "lite" / "calibration.json")
    cal.check(file_checksum(EMBEDDED_DIR / "lite" / "model.safetensors"), "none")  # refit after new weights
    from paraspeechclap.annotate.labels import DEFAULT_SETS

    for name in DEFAULT_SETS:
        assert cal.temperature(name) > 0


def test_default_model_uses_its_shipped_calibration(cli, tmp_path):
    repo = Path(__file__).resolve().parents[1]
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("synth_deep.flac", "synth_whispered.flac"):
        (clips / name).write_bytes((repo / "examples" / name).read_bytes())
    res = cli("annotate", clips, "--out", tmp_path / "a", "--precision", "fp32", "--no-progress", "--json")
    assert res.returncode == 0, res.stderr
    run = json.loads(res.stdout)
    shipped = json.loads((repo / "src" / "paraspeechclap" / "pretrained" / "lite" / "calibration.json").read_text())
    assert run["calibration"]["calibrated"] and run["calibration"]["temperatures"] == {
        s: shipped["temperatures"][s] for s in run["settings"]["attributes"]}
    res = cli("annotate", clips, "--out", tmp_path / "b", "--precision", "fp32", "--no-progress", "--json",
              "--center", "collection")
    assert res.returncode == 0 and "uncalibrated softmax" in res.stderr
    assert not json.loads(res.stdout)["calibration"]["calibrated"]


def test_executor_sessions_are_registered_and_checked():
    from paraspeechclap.annotate.executors import executor_session
    from paraspeechclap.errors import InputError

    with executor_session("local", {}) as held:  # local has no runtime to hold
        assert held is None
    with pytest.raises(InputError, match="unknown executor 'spark'"):
        executor_session("spark", {})


def test_embedding_batch_by_batch_gives_embed_audio_s_result(tiny):
    """The stage embeds one batch at a time (releasing memory between): the same vectors as one call."""
    from paraspeechclap.annotate.stage import embed_releasing

    rng = np.random.default_rng(3)
    wavs = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (3000, 16000, 7000, 12000, 5000, 9000, 800)]
    got = embed_releasing(tiny, wavs, batch_size=3)
    want = tiny.embed_audio(wavs, sample_rate=16000, batch_size=16)
    assert got.shape == want.shape == (len(wavs), tiny.config.embed_dim)
    np.testing.assert_allclose(got, want, atol=1e-6)
