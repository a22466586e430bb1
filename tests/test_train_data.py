"""Training data pipeline: crop after normalisation, gain and loudness relabelling, bad items,
data plans, and the frozen-backbone feature cache."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from paraspeechclap.encoders.base import AudioEncoder, PreparedAudio, lengths_to_mask
from paraspeechclap.errors import ConfigError
from paraspeechclap.training.augment import (
    ClipPipeline,
    band_limit,
    crop_prepared,
    drop_clarity,
    loudness_from_level,
    make_pipeline,
    process_clip,
    relabel_loudness,
)
from paraspeechclap.training.config import AudioConfig, AugmentConfig, SourceConfig
from paraspeechclap.training.data import (
    TrainDataset,
    build_plan,
    collate_train,
    load_source,
)
from paraspeechclap.training.features import CacheRequest, build_feature_table

SR = 16_000


class StubEncoder(AudioEncoder):
    """Waveform backbone stand-in: pooled = [masked mean, masked mean of squares, scale]."""

    def __init__(self, scale: float = 1.0, hop: int = 1) -> None:
        super().__init__()
        self.base = torch.nn.Linear(1, 1)
        self.hidden_size = 3
        self.scale, self.hop = scale, hop
        self.calls = 0

    def prepare(self, wav: np.ndarray) -> PreparedAudio:
        x = torch.from_numpy(np.ascontiguousarray(wav[:: self.hop], dtype=np.float32))
        return PreparedAudio(x)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, **extras: torch.Tensor) -> torch.Tensor:
        self.calls += features.shape[0]
        m = lengths_to_mask(lengths, features.shape[-1]).float()
        n = m.sum(1)
        mean = (features * m).sum(1) / n
        sq = (features**2 * m).sum(1) / n
        return torch.stack([mean, sq, torch.full_like(mean, self.scale)], 1)

    def num_frames(self, length: int) -> int:
        return length

    def spec(self) -> dict[str, Any]:
        return {"type": "stub", "scale": self.scale, "hop": self.hop}


def _normalize(x: np.ndarray) -> np.ndarray:  # hand-written: HF Wav2Vec2FeatureExtractor's do_normalize
    x = x.astype(np.float64)
    return ((x - x.mean()) / np.sqrt(x.var() + 1e-7)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_wavlm():
    from paraspeechclap.encoders.registry import create_audio_encoder

    return create_audio_encoder({"type": "tiny-wavlm"})


def test_crop_is_taken_after_whole_utterance_normalisation(tiny_wavlm) -> None:
    rng = np.random.default_rng(0)
    wav = (rng.standard_normal(3 * SR) * np.linspace(0.01, 1.0, 3 * SR)).astype(np.float32)  # level ramps up
    pipe = make_pipeline(AudioConfig(crop_seconds=1.0, pad_to_crop=True), AugmentConfig(), tiny_wavlm)
    assert pipe.crop_positions == SR and pipe.gain_db is None
    out = process_clip(wav, tiny_wavlm, pipe, random.Random(7)).prepared.features.numpy()
    start = random.Random(7).randrange(3 * SR - SR + 1)
    ref = _normalize(wav)[start:start + SR]  # normalised over 3 s, then cut
    np.testing.assert_allclose(out, ref, atol=1e-5)
    assert abs(out.std() - _normalize(wav[start:start + SR]).std()) > 0.05  # differs from crop-then-normalise


def test_short_clip_is_zero_padded_to_the_crop(tiny_wavlm) -> None:
    wav = np.random.default_rng(1).standard_normal(SR // 2).astype(np.float32)
    padded = process_clip(wav, tiny_wavlm, ClipPipeline(SR, True, None), random.Random(0)).prepared
    assert padded.length == SR
    np.testing.assert_allclose(padded.features[: SR // 2].numpy(), _normalize(wav), atol=1e-5)
    assert torch.count_nonzero(padded.features[SR // 2:]) == 0
    unpadded = process_clip(wav, tiny_wavlm, ClipPipeline(SR, False, None), random.Random(0)).prepared
    assert unpadded.length == SR // 2


def test_crop_length_is_in_prepared_positions() -> None:
    enc = StubEncoder(hop=160)  # 100 positions per second, like a 10 ms log-mel
    pipe = make_pipeline(AudioConfig(crop_seconds=2.5), AugmentConfig(gain_db=[-3.0, 3.0]), enc)
    assert pipe.crop_positions == 250 and pipe.gain_db == (-3.0, 3.0) and pipe.is_random
    # no crop configured: still capped at the encoder's window (30 s)
    assert make_pipeline(AudioConfig(crop_seconds=None), AugmentConfig(), enc).crop_positions == 3000
    x = PreparedAudio(torch.arange(400.0).reshape(1, 400))
    cropped = crop_prepared(x, 250, True, random.Random(3))
    start = random.Random(3).randrange(151)
    assert torch.equal(cropped.features, x.features[:, start:start + 250])


def test_gain_moves_the_level_by_its_decibels() -> None:
    from paraspeechclap.audio.features import active_level_dbfs
    from paraspeechclap.training.toy import tone_clip

    wav = tone_clip(150.0, -35.0, 5.0, np.ones(4), 1.5, np.random.default_rng(0))
    base = active_level_dbfs(wav)
    pipe = ClipPipeline(None, False, (12.0, 12.0))
    clip = process_clip(wav, StubEncoder(), pipe, random.Random(0), measure_level=True)
    assert clip.gain_db == 12.0
    assert clip.level_dbfs == pytest.approx(base + 12.0, abs=0.01)
    # the waveform itself is 4x (12 dB) larger: the stub's mean square grows by 10**(12/10)
    ratio = clip.prepared.features.pow(2).mean() / torch.from_numpy(wav).pow(2).mean()
    assert float(ratio) == pytest.approx(10 ** 1.2, rel=1e-3)


def test_loudness_relabelling() -> None:
    assert [loudness_from_level(x, [-29.0, -18.0]) for x in (-35.0, -23.0, -12.0)] == ["soft", "normal", "loud"]
    row = {"loudness": "soft", "intrinsic_tags": ["soft", "deep"], "gender": "male"}
    expected = {"loudness": "normal", "intrinsic_tags": ["deep"], "gender": "male"}
    assert relabel_loudness(row, -23.0, [-29.0, -18.0]) == expected
    assert relabel_loudness(row, -12.0, [-29.0, -18.0])["intrinsic_tags"] == ["deep", "loud"]
    assert row["loudness"] == "soft"  # the input row is not modified
    no_label = {"emotion": "angry", "intrinsic_tags": ["soft"]}
    assert relabel_loudness(no_label, -12.0, [-29.0, -18.0]) == no_label  # nothing states its loudness


@pytest.mark.parametrize(("tag", "level", "kept"), [
    ("hushed", -35.0, True), ("hushed", -23.0, False), ("soft", -12.0, False),
    ("booming", -12.0, True), ("booming", -30.0, False), ("loud", -23.0, False)])
def test_relabel_drops_official_volume_tags_the_level_no_longer_fits(tag: str, level: float, kept: bool) -> None:
    # a tag-recipe row (synth.tags.plan_tagged): hushed/soft are rendered soft, booming/loud loud
    row = {"loudness": "soft" if tag in ("hushed", "soft") else "loud", "intrinsic_tags": [tag, "flowing"],
           "classification_volume": tag, "classification_rhythm": "flowing"}
    out = relabel_loudness(row, level, [-29.0, -18.0])
    assert (out["classification_volume"] == tag) is kept
    assert (tag in out["intrinsic_tags"]) is kept
    assert "flowing" in out["intrinsic_tags"] and out["classification_rhythm"] == "flowing"
    assert row["classification_volume"] == tag  # the input row is not modified


def test_relabel_tags_a_normal_level_tag_row_by_its_new_level() -> None:
    row = {"loudness": "normal", "intrinsic_tags": ["raspy", "hesitant"], "classification_texture": "raspy"}
    out = relabel_loudness(row, -34.0, [-29.0, -18.0])
    assert out["intrinsic_tags"] == ["raspy", "hesitant", "soft"] and out["classification_texture"] == "raspy"
    assert "classification_volume" not in out  # a level alone does not choose among the official volume tags


def _band_energy(wav: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(wav)) ** 2
    freqs = np.fft.rfftfreq(len(wav), 1 / SR)
    return float(spec[(freqs >= lo) & (freqs < hi)].sum())


def test_band_limit_removes_the_top_band_and_keeps_the_rest() -> None:
    t = np.arange(SR, dtype=np.float32) / SR
    wav = (0.3 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32)
    out = band_limit(wav, 8000)
    assert out.shape == wav.shape and out.dtype == np.float32
    # 6 kHz lies above the 4 kHz Nyquist of an 8 kHz recording: gone; 1 kHz stays
    assert _band_energy(out, 5000, 7000) < 1e-6 * _band_energy(wav, 5000, 7000)
    assert _band_energy(out, 900, 1100) == pytest.approx(_band_energy(wav, 900, 1100), rel=0.02)


def test_narrowband_variants_are_drawn_flagged_and_keyed() -> None:
    t = np.arange(SR, dtype=np.float32) / SR
    wav = (0.2 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32)
    always = ClipPipeline(None, False, None, (1.0, 8000))
    clip = process_clip(wav, StubEncoder(), always, random.Random(0))
    assert clip.narrowband and clip.randomized
    assert float(clip.prepared.features.pow(2).mean()) < 1e-6  # the 6 kHz tone is filtered out
    never = process_clip(wav, StubEncoder(), ClipPipeline(None, False, None, (0.0, 8000)), random.Random(0))
    assert not never.narrowband and torch.equal(never.prepared.features, torch.from_numpy(wav))
    # about half the draws at p = 0.5
    half = ClipPipeline(None, False, None, (0.5, 8000))
    hits = sum(process_clip(wav, StubEncoder(), half, random.Random(i)).narrowband for i in range(200))
    assert 70 < hits < 130
    # a pipeline without it keeps its old identity (cache ids) and its gain draws
    assert "narrowband" not in ClipPipeline(None, False, (-6.0, 6.0)).describe()
    assert ClipPipeline(None, False, None, (0.5, 8000)).describe()["narrowband"] == [0.5, 8000]
    gains = [process_clip(wav, StubEncoder(), ClipPipeline(None, False, (-6.0, 6.0)), random.Random(3)).gain_db]
    assert gains[0] == random.Random(3).uniform(-6.0, 6.0)


def test_drop_clarity_removes_only_recording_labels() -> None:
    row = {"clarity": "telephone", "intrinsic_tags": ["telephone", "deep", "slurred"], "gender": "male"}
    assert drop_clarity(row) == {"clarity": None, "intrinsic_tags": ["deep", "slurred"], "gender": "male"}
    assert row["clarity"] == "telephone"  # the input row is not modified
    no_label = {"emotion": "angry", "intrinsic_tags": ["muffled"]}
    assert drop_clarity(no_label) == no_label  # nothing states its recording condition
    # an official clarity tag: "crisp" names a full-band recording too; slurred survives a band limit
    crisp = {"classification_clarity": "crisp", "intrinsic_tags": ["deep", "crisp"]}
    assert drop_clarity(crisp) == {"classification_clarity": None, "clarity": None, "intrinsic_tags": ["deep"]}
    slurred = {"classification_clarity": "slurred", "intrinsic_tags": ["deep", "slurred"]}
    assert drop_clarity(slurred) == slurred


def test_cached_narrowband_variants_drop_the_clarity_label(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    t = np.arange(SR, dtype=np.float32) / SR
    sf.write(tmp_path / "a" / "c.wav", (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), SR)
    row = {"source": "a", "relative_audio_path": "c.wav", "clarity": "telephone", "gender": "female",
           "intrinsic_tags": ["telephone"]}
    src = load_source(SourceConfig(manifest=str(_manifest(tmp_path, [row])), captions="describe"))
    enc = StubEncoder()

    def fetch(prob: float) -> Any:
        pipe = ClipPipeline(None, False, None, (prob, 8000))
        key = TrainDataset([src], [(0, 0)], enc, pipe, AugmentConfig(), seed=0).key(0)
        table = build_feature_table([CacheRequest(key, src.manifest.audio_path(0))], enc, tmp_path / "c", pipe,
                                    seed=0, variants=2, progress=False)
        assert all(bool(e.get("narrowband")) == (prob == 1.0) for e in table.entries[key])
        return TrainDataset([src], [(0, 0)], enc, pipe, AugmentConfig(), seed=0, features=table)[0]

    assert fetch(1.0).row["clarity"] is None and fetch(1.0).tags == []
    assert fetch(0.0).row["clarity"] == "telephone" and fetch(0.0).tags == ["telephone"]


def test_channel_variants_are_drawn_flagged_keyed_and_keep_old_ids() -> None:
    wav = (0.2 * np.sin(2 * np.pi * 300 * np.arange(SR) / SR)).astype(np.float32)
    always = process_clip(wav, StubEncoder(), ClipPipeline(None, False, None, None, 1.0), random.Random(0))
    assert always.channel and always.randomized and not always.narrowband
    assert not np.allclose(always.prepared.features.numpy(), wav)
    never = process_clip(wav, StubEncoder(), ClipPipeline(None, False, None, None, 0.0), random.Random(0))
    assert not never.channel and np.array_equal(never.prepared.features.numpy(), wav)
    half = ClipPipeline(None, False, None, None, 0.5)
    hits = sum(process_clip(wav, StubEncoder(), half, random.Random(i)).channel for i in range(200))
    assert 70 < hits < 130
    assert "channel" not in ClipPipeline(None, False, (-6.0, 6.0), (0.3, 8000)).describe()  # old cache ids hold
    assert ClipPipeline(None, False, None, None, 0.5).describe()["channel"][0] == 0.5
    # the gain and band-limit draws of a pipeline without channel are unchanged
    plain = process_clip(wav, StubEncoder(), ClipPipeline(None, False, (-6.0, 6.0)), random.Random(3))
    assert plain.gain_db == random.Random(3).uniform(-6.0, 6.0)


def test_cached_channel_variants_drop_the_clarity_label(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    sf.write(tmp_path / "a" / "c.wav", (0.2 * np.sin(2 * np.pi * 300 * np.arange(SR) / SR)).astype(np.float32), SR)
    row = {"source": "a", "relative_audio_path": "c.wav", "clarity": "crisp", "gender": "female",
           "intrinsic_tags": ["crisp"]}
    src = load_source(SourceConfig(manifest=str(_manifest(tmp_path, [row])), captions="describe"))
    enc = StubEncoder()
    for prob in (1.0, 0.0):
        pipe = ClipPipeline(None, False, None, None, prob)
        key = TrainDataset([src], [(0, 0)], enc, pipe, AugmentConfig(), seed=0).key(0)
        table = build_feature_table([CacheRequest(key, src.manifest.audio_path(0))], enc, tmp_path / "c", pipe,
                                    seed=0, variants=2, progress=False)
        assert all(bool(e.get("channel")) == (prob == 1.0) for e in table.entries[key])
        item = TrainDataset([src], [(0, 0)], enc, pipe, AugmentConfig(), seed=0, features=table)[0]
        assert (item.row["clarity"], item.tags) == ((None, []) if prob == 1.0 else ("crisp", ["crisp"]))


def test_plans() -> None:
    assert build_plan([2, 3], [1, 1], "interleave", None, 0) == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 0), (1, 2)]
    assert build_plan([2, 1], [1, 1], "concat", None, 0) == [(0, 0), (0, 1), (1, 0)]
    plan = build_plan([10, 10], [3.0, 1.0], "weighted", 400, 0)
    share = sum(1 for s, _ in plan if s == 0) / len(plan)
    assert len(plan) == 400 and 0.68 < share < 0.82  # 3:1 weights -> 75 %


def _manifest(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    p = tmp_path / "manifest.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return p


def _bad_corpus(tmp_path: Path) -> Path:
    """4 good clips + a missing, a corrupt and a silent one."""
    from paraspeechclap.training.toy import tone_clip

    (tmp_path / "a").mkdir()
    rows = []
    for i in range(4):
        sf.write(tmp_path / "a" / f"ok{i}.wav", tone_clip(120 + 40 * i, -23, 5, np.ones(3), 1.0,
                                                            np.random.default_rng(i)), SR)
        rows.append({"source": "a", "relative_audio_path": f"ok{i}.wav", "text_description": f"good {i}"})
    (tmp_path / "a" / "corrupt.wav").write_bytes(b"RIFF not really a wave file" * 10)
    sf.write(tmp_path / "a" / "silent.wav", np.zeros(SR, np.float32), SR)
    for name in ("missing.wav", "corrupt.wav", "silent.wav"):
        rows.append({"source": "a", "relative_audio_path": name, "text_description": f"bad {name}"})
    return _manifest(tmp_path, rows)


def test_bad_items_are_replaced_and_reported(tmp_path: Path, tiny_wavlm) -> None:
    src = load_source(SourceConfig(manifest=str(_bad_corpus(tmp_path))))
    plan = build_plan([len(src.manifest)], [1.0], "concat", None, 0)
    ds = TrainDataset([src], plan, tiny_wavlm, ClipPipeline(SR, True, None), AugmentConfig(), seed=0)
    good = ds[1]
    assert good.caption == "good 1" and good.bad == []
    reasons = {}
    for pos in (4, 5, 6):
        item = ds[pos]
        assert item.caption.startswith("good")  # a readable substitute
        assert item.bad and item.bad[0][0].endswith(src.manifest[pos]["relative_audio_path"])
        reasons[src.manifest[pos]["relative_audio_path"]] = item.bad[0][1]
    assert "not found" in reasons["missing.wav"]
    assert "cannot decode" in reasons["corrupt.wav"]
    assert "silence" in reasons["silent.wav"]
    batch = collate_train([ds[0], ds[5], ds[6]])
    assert len(batch["captions"]) == 3  # batch size kept
    # both bad items listed (a substitute drawn at random may itself be bad and listed too)
    assert {k for k, _ in batch["bad"]} >= {"0:a/corrupt.wav", "0:a/silent.wav"}
    assert batch["audio"]["features"].shape == (3, SR)


def _write_clips(d: Path, n: int, seconds: float = 0.5) -> list[Path]:
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = d / f"c{i}.wav"
        sf.write(p, np.random.default_rng(i).uniform(-0.5, 0.5, int(seconds * SR)).astype(np.float32), SR)
        out.append(p)
    return out


def test_feature_cache_keys_on_content_backbone_and_augmentation(tmp_path: Path) -> None:
    clips = _write_clips(tmp_path / "audio", 3)
    root = tmp_path / "cache"
    reqs = [CacheRequest(f"k{i}", str(p)) for i, p in enumerate(clips)]
    enc = StubEncoder()
    pipe = ClipPipeline(4000, True, (-6.0, 6.0))
    first = build_feature_table(reqs, enc, root, pipe, seed=0, variants=3, progress=False)
    assert first.computed == 3 and set(first.entries) == {"k0", "k1", "k2"}
    assert all(len(v) == 3 for v in first.entries.values())
    v = first.entries["k0"]
    assert not torch.equal(v[0]["features"], v[1]["features"])  # K distinct augmented variants
    # same content under another name and path: served from the cache, nothing recomputed
    moved = tmp_path / "elsewhere" / "renamed.wav"
    moved.parent.mkdir()
    moved.write_bytes(clips[0].read_bytes())
    again = build_feature_table([CacheRequest("x", str(moved))], enc, root, pipe, seed=0, variants=3, progress=False)
    assert again.computed == 0
    assert torch.equal(again.entries["x"][2]["features"], first.entries["k0"][2]["features"])
    # another augmentation, seed, or backbone spec is another entry
    for other_pipe, other_enc, seed in ((ClipPipeline(4000, True, (-3.0, 3.0)), enc, 0), (pipe, enc, 1),
                                        (pipe, StubEncoder(scale=2.0), 0)):
        t = build_feature_table(reqs[:1], other_enc, root, other_pipe, seed=seed, variants=3, progress=False)
        assert t.computed == 1
    # changed file content is a new entry
    sf.write(clips[1], np.zeros(SR // 2, np.float32) + 0.25, SR)
    assert build_feature_table(reqs, enc, root, pipe, seed=0, variants=3, progress=False).computed == 1


def test_cached_variant_equals_the_uncached_pipeline(tmp_path: Path) -> None:
    (clip,) = _write_clips(tmp_path / "audio", 1, seconds=1.0)
    enc, pipe = StubEncoder(), ClipPipeline(6000, True, (-6.0, 6.0))
    table = build_feature_table([CacheRequest("k", str(clip))], enc, tmp_path / "c", pipe, seed=5, variants=2,
                                progress=False)
    from paraspeechclap.audio.io import load_audio
    from paraspeechclap.training.features import FileHasher

    digest = FileHasher(tmp_path / "h.json").digest(clip)
    wav = load_audio(clip)
    for k in range(2):
        ref = process_clip(wav, enc, pipe, random.Random(f"5/{digest}/{k}"), measure_level=True)
        x = ref.prepared.features[None]
        expected = enc(x, torch.tensor([x.shape[-1]]))[0]
        torch.testing.assert_close(table.entries["k"][k]["features"], expected)
        assert table.entries["k"][k]["level_dbfs"] == pytest.approx(ref.level_dbfs)


def test_clips_shorter_than_the_crop_without_gain_are_computed_once(tmp_path: Path) -> None:
    clips = _write_clips(tmp_path / "audio", 2, seconds=0.25)  # 4000 samples < crop of 6000
    enc = StubEncoder()
    table = build_feature_table([CacheRequest(f"k{i}", str(p)) for i, p in enumerate(clips)], enc, tmp_path / "c",
                                ClipPipeline(6000, False, None), seed=0, variants=4, progress=False)
    assert enc.calls == 2  # one backbone pass per clip, not four
    assert all(len(v) == 4 and all(torch.equal(e["features"], v[0]["features"]) for e in v)
               for v in table.entries.values())


def test_full_length_entry_is_the_whole_clip(tmp_path: Path) -> None:
    (clip,) = _write_clips(tmp_path / "audio", 1, seconds=0.7)
    enc = StubEncoder()
    table = build_feature_table([CacheRequest("k", str(clip))], enc, tmp_path / "c", None, seed=0, variants=1,
                                progress=False)
    wav = torch.from_numpy(sf.read(clip, dtype="float32")[0])
    expected = torch.stack([wav.mean(), (wav**2).mean(), torch.tensor(1.0)])
    torch.testing.assert_close(table.entries["k"][0]["features"], expected, atol=1e-4, rtol=1e-4)


def test_augmentation_is_never_dropped_silently(tmp_path: Path) -> None:
    (clip,) = _write_clips(tmp_path / "audio", 1)
    with pytest.raises(ConfigError, match="variants"):
        build_feature_table([CacheRequest("k", str(clip))], StubEncoder(), tmp_path / "c",
                            ClipPipeline(4000, True, None), seed=0, variants=0, progress=False)


def test_unreadable_clips_are_reported_not_cached(tmp_path: Path) -> None:
    clips = _write_clips(tmp_path / "audio", 1)
    bad = tmp_path / "audio" / "broken.wav"
    bad.write_bytes(b"garbage" * 100)
    reqs = [CacheRequest("good", str(clips[0])), CacheRequest("bad", str(bad)),
            CacheRequest("gone", str(tmp_path / "no.wav"))]
    table = build_feature_table(reqs, StubEncoder(), tmp_path / "c", None, seed=0, variants=1, progress=False)
    assert set(table.entries) == {"good"} and set(table.bad) == {"bad", "gone"}


def test_non_finite_features_are_reported_not_cached(tmp_path: Path) -> None:
    clips = _write_clips(tmp_path / "audio", 2)
    sf.write(clips[1], np.random.default_rng(1).uniform(-0.9, 0.9, SR).astype(np.float32), SR)

    class NanOnLoud(StubEncoder):  # e.g. a pitch summary of an empty set of frames, on loud clips only
        def forward(self, features: torch.Tensor, lengths: torch.Tensor, **extras: torch.Tensor) -> torch.Tensor:
            out = super().forward(features, lengths)
            return torch.where(out[:, 1:2] > 0.2, torch.nan, out)  # mean square: 0.08 (good), 0.27 (loud)

    reqs = [CacheRequest("good", str(clips[0])), CacheRequest("loud", str(clips[1]))]
    table = build_feature_table(reqs, NanOnLoud(), tmp_path / "c", None, seed=0, variants=1, progress=False)
    assert set(table.entries) == {"good"} and "NaN" in table.bad["loud"]
    again = build_feature_table(reqs, NanOnLoud(), tmp_path / "c", None, seed=0, variants=1, progress=False)
    assert again.computed == 0 and "loud" in again.bad  # "good" came from the cache; "loud" was tried again


def test_dataset_relabels_loudness_after_the_gain(tmp_path: Path) -> None:
    from paraspeechclap.training.toy import tone_clip

    (tmp_path / "a").mkdir()
    sf.write(tmp_path / "a" / "soft.wav", tone_clip(150.0, -35.0, 5.0, np.ones(4), 1.0, np.random.default_rng(0)), SR)
    row = {"source": "a", "relative_audio_path": "soft.wav", "loudness": "soft", "gender": "female",
           "intrinsic_tags": ["soft"]}
    src = load_source(SourceConfig(manifest=str(_manifest(tmp_path, [row])), captions="describe"))

    def fetch(gain: float) -> Any:
        aug = AugmentConfig(gain_db=[gain, gain], relabel_loudness=True)
        return TrainDataset([src], [(0, 0)], StubEncoder(), ClipPipeline(None, False, (gain, gain)), aug, seed=0)[0]

    assert fetch(0.0).tags == ["soft"]
    assert fetch(12.0).tags == []  # -23 dBFS: normal, no loudness tag
    assert fetch(22.0).tags == ["loud"]  # -13 dBFS


def test_exclude_drops_rows_by_field_value(tmp_path: Path) -> None:
    rows = [{"source": s, "relative_audio_path": f"{i}.wav", "text_description": "a voice", "speaker": f"p{i}"}
            for i, s in enumerate(["emodb", "ased", "emodb", "savee"])]
    path = str(_manifest(tmp_path, rows))
    kept = load_source(SourceConfig(manifest=path, exclude={"source": ["emodb"]})).manifest
    assert sorted(r["source"] for r in kept) == ["ased", "savee"]
    kept = load_source(SourceConfig(manifest=path, exclude={"source": ["savee"], "speaker": ["p1"]})).manifest
    assert [r["speaker"] for r in kept] == ["p0", "p2"]
