"""Re-pitched real recordings (paraspeechclap.synth.repitch): the plan's labels and targets, the
rendered clip's F0 (measured independently of the pitch tracker the module uses), the derived
manifest and the ``repitch`` block of a training data source."""

from __future__ import annotations

import collections
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from paraspeechclap.synth.pipeline import PITCH_SEMITONES, REFERENCE_F0_HZ
from paraspeechclap.synth.repitch import MAX_SHIFT, plan_repitch, reach
from paraspeechclap.testing import tone

needs_world = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("pyworld", "scipy")), reason="needs the [synth] extra"
)


def test_reach_is_the_level_range_within_max_shift_of_the_clip() -> None:
    lo, hi = PITCH_SEMITONES["deep"]
    assert reach("deep", 0.0) == (lo, hi)
    assert reach("deep", hi + MAX_SHIFT - 0.5) == (hi - 0.5, hi)  # only the top half-semitone is in reach
    assert reach("deep", hi + MAX_SHIFT + 0.5) is None  # too high to come down to deep
    assert reach("high-pitched", -20.0) is None


def test_plan_balances_levels_and_keeps_every_target_in_range_and_reach(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n_clips = 40
    genders = ["male", "female", None, "unknown"] * (n_clips // 4)
    owns = [float(v) for v in rng.uniform(-12, 14, n_clips)]
    owns[0] = None  # unvoiced
    tasks = plan_repitch([f"c{i}.flac" for i in range(n_clips)], genders, owns, 90, seed=3, out_dir=tmp_path)
    counts = collections.Counter(t.level for t in tasks)
    assert set(counts) == set(PITCH_SEMITONES) and max(counts.values()) - min(counts.values()) <= 1
    for t in tasks:
        i = int(Path(t.source_path).stem[1:])
        assert genders[i] in REFERENCE_F0_HZ and i != 0
        lo, hi = PITCH_SEMITONES[t.level]
        assert lo <= t.semitones <= hi
        assert abs(t.semitones - t.own) <= MAX_SHIFT + 1e-6
    assert plan_repitch([f"c{i}.flac" for i in range(n_clips)], genders, owns, 90, 3, tmp_path) == tasks
    with pytest.raises(ValueError, match="reach every pitch level"):
        plan_repitch(["a.flac"], ["male"], [20.0], 3, 0, tmp_path)


def _autocorr_f0(x: np.ndarray, sr: int = 16_000) -> float:
    """Median F0 of 50 ms frames by the plain autocorrelation peak in 60-400 Hz (independent reference)."""
    f0s = []
    for start in range(0, len(x) - 800, 400):
        frame = x[start:start + 800] - x[start:start + 800].mean()
        ac = np.correlate(frame, frame, "full")[len(frame) - 1:]
        lo, hi = sr // 400, sr // 60
        f0s.append(sr / (lo + int(np.argmax(ac[lo:hi]))))
    return float(np.median(f0s))


@needs_world
def test_rendered_clip_has_the_target_f0_and_keeps_its_level(tmp_path: Path) -> None:
    from paraspeechclap.synth.effects import active_level_db
    from paraspeechclap.synth.repitch import RepitchTask, render_task

    src = tmp_path / "src.flac"
    x = tone(2.0, 300.0, amp=0.2)  # a female voice at 300 Hz: +6.2 st from the 210 Hz reference
    sf.write(src, x, 16_000)
    own = 12 * math.log2(300.0 / REFERENCE_F0_HZ["female"])
    task = RepitchTask(0, str(src), str(tmp_path / "out.flac"), "female", own, "deep", -5.0, 1)
    labels = render_task(task)
    assert labels is not None and labels["pitch_level"] == "deep"
    y, sr = sf.read(tmp_path / "out.flac")
    target_hz = REFERENCE_F0_HZ["female"] * 2 ** (-5.0 / 12)  # 157 Hz
    assert abs(12 * math.log2(_autocorr_f0(y, sr) / target_hz)) < 0.7
    assert active_level_db(y, sr) == pytest.approx(active_level_db(x.astype(np.float64), 16_000), abs=1.0)


def _write_corpus(root: Path, clips: list[tuple[np.ndarray, dict]]) -> Path:
    """16 kHz clips as ``<root>/c/<i>.flac`` and a manifest of source ``c`` with each clip's fields."""
    (root / "c").mkdir(parents=True)
    rows = []
    for i, (wav, fields) in enumerate(clips):
        sf.write(root / "c" / f"{i}.flac", wav, 16_000)
        rows.append({"source": "c", "relative_audio_path": f"{i}.flac", "text_description": "x", **fields})
    man = root / "manifest.jsonl"
    man.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return man


@needs_world
def test_derived_source_is_built_once_from_the_filtered_rows_without_emotion(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from paraspeechclap.training.config import RepitchConfig, SourceConfig
    from paraspeechclap.training.data import load_source

    monkeypatch.setenv("PARASPEECHCLAP_CACHE", str(tmp_path / "cache"))
    clips = [(tone(1.0, f0, amp=0.2, seed=i), {"gender": g, "emotion": "angry", "speaker": f"s{i % 2}"})
             for i, (g, f0) in enumerate([("male", 110.0), ("female", 220.0), ("male", 150.0), ("female", 180.0)])]
    man = _write_corpus(tmp_path / "corpus", clips)
    cfg = SourceConfig(manifest=str(man), exclude={"speaker": ["s1"]}, captions="describe",
                       repitch=RepitchConfig(n=6, seed=0))
    src = load_source(cfg)
    got = [src.manifest[i] for i in range(len(src.manifest))]
    assert 4 <= len(got) <= 6  # a render that misses its F0 target is dropped, not mislabelled
    assert {r["origin"] for r in got} <= {"c/0.flac", "c/2.flac"}  # the source's filters apply first
    assert all(r["pitch_level"] in PITCH_SEMITONES and "emotion" not in r and r["gender"] for r in got)
    assert all(src.manifest.audio_path(i).is_file() for i in range(len(got)))
    corpus_dir = src.manifest.audio_path(0).parents[2].name  # <cache>/repitch/<corpus>/repitch/000/x.flac
    assert len({r["id"] for r in got}) == len(got) and all(corpus_dir in r["id"] for r in got)
    files = sorted((tmp_path / "cache" / "repitch").rglob("*.flac"))
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = load_source(cfg)  # cached: same rows, nothing rendered again
    assert [again.manifest[i] for i in range(len(again.manifest))] == got
    assert [f.stat().st_mtime_ns for f in files] == mtimes


@needs_world
def test_repitch_exclude_drops_derived_clips_of_the_origin_without_rendering_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from paraspeechclap.training.config import RepitchConfig, SourceConfig
    from paraspeechclap.training.data import load_source

    monkeypatch.setenv("PARASPEECHCLAP_CACHE", str(tmp_path / "cache"))
    clips = [(tone(1.0, f0, amp=0.2, seed=i), {"gender": g, "speaker": f"s{i % 2}", "corpus": "ab"[i % 2]})
             for i, (g, f0) in enumerate([("male", 110.0), ("female", 220.0), ("male", 150.0), ("female", 180.0)])]
    man = _write_corpus(tmp_path / "corpus", clips)
    full = load_source(SourceConfig(manifest=str(man), captions="describe", repitch=RepitchConfig(n=8, seed=0)))
    files = sorted((tmp_path / "cache" / "repitch").rglob("*.flac"))
    mtimes = [f.stat().st_mtime_ns for f in files]
    cut = load_source(SourceConfig(manifest=str(man), captions="describe",
                                   repitch=RepitchConfig(n=8, seed=0, exclude={"corpus": ["b"]})))
    every = [full.manifest[i] for i in range(len(full.manifest))]
    want = [r for r in every if r["origin"] in {"c/0.flac", "c/2.flac"}]  # the rows of corpus "a"
    assert want and len(want) < len(every)
    assert [cut.manifest[i] for i in range(len(cut.manifest))] == want
    assert sorted((tmp_path / "cache" / "repitch").rglob("*.flac")) == files  # the same derived corpus
    assert [f.stat().st_mtime_ns for f in files] == mtimes  # nothing rendered again
    kept = load_source(SourceConfig(manifest=str(man), captions="describe",
                                    repitch=RepitchConfig(n=8, seed=0, keep=["corpus"])))
    rows = [kept.manifest[i] for i in range(len(kept.manifest))]
    assert "corpus" not in every[0]  # derived rows carry no origin fields unless asked
    assert [r["corpus"] for r in rows] == ["ab"[int(r["origin"][2]) % 2] for r in rows]  # c/<i>.flac -> "ab"[i % 2]
    assert [{k: v for k, v in r.items() if k != "corpus"} for r in rows] == every


def test_repitch_needs_a_positive_n() -> None:
    from paraspeechclap.errors import ConfigError
    from paraspeechclap.training.config import load_config

    with pytest.raises(ConfigError, match="repitch.n"):
        load_config(data={"model": {"audio_encoder": {"type": "tiny-wavlm"}, "text_encoder": {"type": "tiny-bert"}},
                          "train": {"output_dir": "out", "max_steps": 3},
                          "data": {"train": [{"manifest": "m.jsonl", "repitch": {"n": 0}}]}})


def _syllables(seconds: float, f0: float, syllable_hz: float) -> np.ndarray:
    """A harmonic tone switched on and off ``syllable_hz`` times a second: a stand-in with a tempo."""
    x = tone(seconds, f0, amp=0.3).astype(np.float64)
    t = np.arange(len(x)) / 16_000
    return x * (np.sin(2 * np.pi * syllable_hz * t) > 0)


def _syllable_rate(x: np.ndarray, sr: int = 16_000) -> float:
    """Dominant frequency (Hz) of the 10 ms RMS envelope between 1 and 20 Hz (independent reference)."""
    env = np.sqrt(np.mean(x[: len(x) // 160 * 160].reshape(-1, 160) ** 2, axis=1))
    spec = np.abs(np.fft.rfft((env - env.mean()) * np.hanning(len(env)), n=8192))
    freqs = np.fft.rfftfreq(8192, 0.01)
    band = (freqs >= 1.0) & (freqs <= 20.0)
    return float(freqs[band][np.argmax(spec[band])])


@needs_world
@pytest.mark.parametrize("rate", [0.67, 1.5])
def test_change_tempo_scales_duration_and_syllable_rate_and_keeps_f0(rate: float) -> None:
    from paraspeechclap.synth import world

    x = _syllables(3.0, 150.0, 4.0)
    y = world.restyle(x, 16_000, 150.0, 0.0, "modal", {}, 0, rate=rate)
    assert len(y) / 16_000 == pytest.approx(3.0 / rate, abs=0.02)
    assert _syllable_rate(y) == pytest.approx(4.0 * rate, rel=0.06)
    from paraspeechclap.audio.pitch import frame_f0, median_f0

    assert abs(12 * math.log2(median_f0(frame_f0(y)[0]) / 150.0)) < 0.3  # pitch untouched
    same = world.restyle(x, 16_000, 150.0, 0.0, "modal", {}, 0, rate=1.0)
    assert abs(len(same) - len(x)) <= 160 and _syllable_rate(same) == pytest.approx(4.0, rel=0.06)


def test_rate_plan_adds_balanced_rate_levels_without_changing_the_pitch_plan(tmp_path: Path) -> None:
    from paraspeechclap.synth.pipeline import RATE_FACTOR
    from paraspeechclap.synth.repitch import corpus_key

    rng = np.random.default_rng(1)
    paths = [f"c{i}.flac" for i in range(30)]
    genders = ["male", "female"] * 15
    owns = [float(v) for v in rng.uniform(-6, 6, 30)]
    plain = plan_repitch(paths, genders, owns, 60, seed=2, out_dir=tmp_path)
    timed = plan_repitch(paths, genders, owns, 60, seed=2, out_dir=tmp_path, speaking_rate=True)
    assert [(t.source_path, t.level, t.semitones) for t in timed] == [(t.source_path, t.level, t.semitones)
                                                                     for t in plain]
    assert all(t.rate_level is None and t.rate == 1.0 for t in plain)
    counts = collections.Counter(t.rate_level for t in timed)
    assert set(counts) == set(RATE_FACTOR) and max(counts.values()) - min(counts.values()) <= 1
    assert all(RATE_FACTOR[t.rate_level][0] <= t.rate <= RATE_FACTOR[t.rate_level][1] for t in timed)
    assert corpus_key(paths, 60, 2) != corpus_key(paths, 60, 2, speaking_rate=True)


@needs_world
def test_retimed_source_keeps_only_included_rows_and_labels_their_rate(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from paraspeechclap.synth.pipeline import RATE_FACTOR
    from paraspeechclap.training.config import RepitchConfig, SourceConfig
    from paraspeechclap.training.data import load_source

    monkeypatch.setenv("PARASPEECHCLAP_CACHE", str(tmp_path / "cache"))
    clips = [(_syllables(2.0, 120.0 + 10 * i, 4.0).astype(np.float32), {"gender": "male", "emotion": emotion,
                                                                        "speaker": f"s{i}"})
             for i, emotion in enumerate(["neutral", "angry", "neutral", "sad"])]
    man = _write_corpus(tmp_path / "corpus", clips)
    src = load_source(SourceConfig(manifest=str(man), include={"emotion": ["neutral"]}, captions="describe",
                                   repitch=RepitchConfig(n=6, seed=0, speaking_rate=True)))
    got = [src.manifest[i] for i in range(len(src.manifest))]
    assert 4 <= len(got) <= 6 and {r["origin"] for r in got} <= {"c/0.flac", "c/2.flac"}
    for i, r in enumerate(got):
        lo, hi = RATE_FACTOR[r["speaking_rate"]]
        assert lo <= r["repitch"]["rate"] <= hi
        assert r["duration"] == pytest.approx(2.0 / r["repitch"]["rate"], abs=0.03)
        y, _ = sf.read(src.manifest.audio_path(i))
        assert _syllable_rate(y) == pytest.approx(4.0 * r["repitch"]["rate"], rel=0.08)


def test_semitones_to_counts_from_the_median_of_the_voiced_frames() -> None:
    from paraspeechclap.synth.world import WorldParams, semitones_to

    params = WorldParams(np.array([0.0, 100.0, 90.0, 110.0, 0.0, 100.0]), np.ones((6, 3)), np.zeros((6, 3)), 16_000)
    assert semitones_to(params, 200.0) == pytest.approx(12.0)  # median of 90, 100, 100, 110 is 100 Hz
    unvoiced = WorldParams(np.zeros(4), np.ones((4, 3)), np.zeros((4, 3)), 16_000)
    assert semitones_to(unvoiced, 200.0) == 0.0


@needs_world
def test_restyle_to_a_target_lands_the_median_f0_whatever_the_voice_table_says() -> None:
    from paraspeechclap.audio.pitch import frame_f0, median_f0
    from paraspeechclap.synth import world

    x = _syllables(2.0, 150.0, 4.0)
    # the nominal F0 (only the analysis range) is off by 20 %: the clip's own F0 still lands on 2 semitones above
    # the target, as its own analysis is what is shifted
    y = world.restyle(x, 16_000, 125.0, 2.0, "modal", {}, 0, target_f0_hz=200.0)
    assert 12 * math.log2(median_f0(frame_f0(y)[0]) / 200.0) == pytest.approx(2.0, abs=0.3)
