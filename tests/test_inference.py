"""Batched inference: batch invariance, windows, formats, precision, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

# the real function, bound before conftest patches it
from paraspeechclap.inference import cpu_has_bf16 as _real_cpu_has_bf16
from paraspeechclap.inference import split_windows
from paraspeechclap.testing import tone


def test_audio_batch_invariance_wavlm(tiny):
    rng = np.random.default_rng(3)
    wavs = [tone(s, f, seed=i) for i, (s, f) in enumerate([(1.3, 110), (0.4, 250), (2.2, 180), (0.9, 300)])]
    wavs.append(rng.standard_normal(12345).astype(np.float32) * 0.1)
    batched = tiny.embed_audio(wavs, batch_size=5)
    alone = np.stack([tiny.embed_audio([w])[0] for w in wavs])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    # and with a different batch composition / size
    np.testing.assert_allclose(tiny.embed_audio(wavs[::-1], batch_size=2)[::-1], alone, atol=1e-5)


def test_text_batch_invariance_and_cache(tiny):
    caps = ["a deep voice", "a woman whispering very slowly, in a sad and breathy tone", "loud"]
    batched = tiny.embed_text(caps)
    tiny._text_cache.clear()
    alone = np.stack([tiny.embed_text([c])[0] for c in caps])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    assert set(caps) <= set(tiny._text_cache)
    np.testing.assert_array_equal(tiny.embed_text(caps), alone)  # served from the cache


def test_minilm_text_batch_invariance():
    from paraspeechclap.encoders.hf_text import build_minilm

    enc = build_minilm().eval()
    caps = ["a deep voice", "a woman whispering very slowly, in a sad and breathy tone"]
    with torch.no_grad():
        both = enc(**enc.tokenize(caps))
        alone = torch.cat([enc(**enc.tokenize([c])) for c in caps])
    torch.testing.assert_close(both, alone, atol=1e-5, rtol=1e-4)


def test_equal_length_backbone_never_mixes_lengths(tiny):
    """A backbone that cannot mask padding must give the lone-item result inside any batch."""
    from paraspeechclap.encoders.tiny import build_tiny_wavlm

    old = build_tiny_wavlm(pooling="mean")
    model = type(tiny)(old, tiny.text_branch, tiny.config)
    model.load_state_dict({k: v for k, v in tiny.state_dict().items()}, strict=True)
    model.eval()
    wavs = [tone(s, seed=i) for i, s in enumerate([1.0, 0.5, 1.0, 0.7])]
    np.testing.assert_allclose(model.embed_audio(wavs, batch_size=4),
                               np.stack([model.embed_audio([w])[0] for w in wavs]), atol=1e-5)


def test_windows_cover_the_clip_without_a_tiny_tail():
    wav = np.arange(100_001, dtype=np.float32)
    parts = split_windows(wav, 30_000)
    assert len(parts) == 4 and max(len(p) for p in parts) <= 30_000 and min(len(p) for p in parts) >= 25_000
    np.testing.assert_array_equal(np.concatenate(parts), wav)
    assert len(split_windows(wav[:30_000], 30_000)) == 1


def test_long_audio_is_the_frame_weighted_mean_of_its_windows(tiny):
    enc = tiny.audio_branch
    wav = tone(3.5, 140)
    full_window = tiny.embed_audio([wav])
    old = enc.window_samples
    enc.window_samples = 16000
    try:
        windowed = tiny.embed_audio([wav])
        short = tiny.embed_audio([wav[:15000]])  # shorter than a window: exactly the unwindowed result
    finally:
        enc.window_samples = old
    np.testing.assert_allclose(short, tiny.embed_audio([wav[:15000]]), atol=0)
    # reference: pool each window alone, weight by frames, project, normalise
    with torch.no_grad():
        pooled, weights = [], []
        for w in split_windows(wav, 16000):
            p = enc.prepare(w)
            pooled.append(enc(p.features[None], torch.tensor([p.length]))[0].double())
            weights.append(enc.num_frames(len(w)))
        mean = sum(wt * p for wt, p in zip(weights, pooled)) / sum(weights)
        ref = torch.nn.functional.normalize(tiny.audio_projection(mean.float()[None]), dim=-1).numpy()
    np.testing.assert_allclose(windowed, ref, atol=1e-5)
    assert float((windowed @ full_window.T)[0, 0]) > 0.9  # windows see less context, but the same sound


@pytest.mark.parametrize("fmt", ["wav8k", "wav48k", "stereo", "flac24", "ogg", "mp3", "clipped"])
def test_unusual_but_valid_audio_just_works(tiny, tmp_path, fmt):
    x = tone(1.2, 200)
    ref = tiny.embed_audio([x])
    sr, data, kw, name = 16000, x, {}, "a.wav"
    if fmt == "wav8k":
        import soxr
        sr, data = 8000, soxr.resample(x, 16000, 8000)
    elif fmt == "wav48k":
        import soxr
        sr, data = 48000, soxr.resample(x, 16000, 48000)
    elif fmt == "stereo":
        data = np.stack([x, x], axis=1)
    elif fmt == "flac24":
        kw, name = {"subtype": "PCM_24"}, "a.flac"
    elif fmt == "ogg":
        name = "a.ogg"
    elif fmt == "mp3":
        name = "a.mp3"
    elif fmt == "clipped":
        data = np.clip(x * 10, -1, 1)
    path = tmp_path / name
    sf.write(path, data, sr, **kw)
    emb = tiny.embed_audio([str(path)])
    assert emb.shape == ref.shape and np.isfinite(emb).all()
    if fmt in ("stereo", "flac24"):
        np.testing.assert_allclose(emb, ref, atol=1e-3)
    elif fmt != "clipped":
        assert float((emb @ ref.T)[0, 0]) > 0.95


def test_array_with_sample_rate_is_resampled(tiny):
    import soxr

    x = tone(1.0, 200)
    x44 = soxr.resample(x, 16000, 44100).astype(np.float32)
    assert float((tiny.embed_audio([x44], sample_rate=44100) @ tiny.embed_audio([x]).T)[0, 0]) > 0.99


def test_inference_is_deterministic_and_restores_train_mode(tiny):
    x = [tone(0.8, 150)]
    a = tiny.embed_audio(x)
    tiny.train()
    try:
        b = tiny.embed_audio(x)  # dropout must be off during inference even if the model trains
        assert tiny.training
    finally:
        tiny.eval()
    np.testing.assert_array_equal(a, b)


#: bfloat16's unit roundoff: 8 significant bits.
BF16_U = 2.0**-8
#: An item's embedding whatever its batch: in fp32 only the summation order changes (1e-5); in bf16 a
#: batch changes the matrix kernels' blocking, so the final roundings of a unit-norm embedding may
#: differ by about one unit each: 2u. (int8 is not batch invariant: dynamic quantisation scales the
#: activations by the batch's range.) README states both tolerances.
BATCH_ATOL = {"fp32": 1e-5, "bf16": 2 * BF16_U}


@pytest.fixture(scope="module")
def lite_waves():
    """Real and synthetic clips of several lengths for the shipped model."""
    from pathlib import Path

    ex = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.flac"))[:4]
    waves = [sf.read(p, dtype="float32")[0] for p in ex]
    return waves + [tone(2.3, 140), tone(0.6, 230, seed=1)]


def test_bf16_and_int8_track_fp32_on_the_shipped_model(lite_waves):
    """Meaningful precision errors need trained weights (a random tiny model's bf16 error is
    dominated by its random weights: cosine 0.91 on AMX CPUs). Bound for bf16: the embedding's
    relative error is a few roundings of u accumulated over the network; ||e|| <= 8u gives
    1 - cos = ||e||^2 / 2 <= 32u^2 (measured about 11u^2)."""
    from paraspeechclap import load_model

    ref = load_model(precision="fp32").embed_audio(lite_waves)
    for precision, min_cos in (("bf16", 1 - 32 * BF16_U**2), ("int8", 0.99)):
        m = load_model(precision=precision)
        assert m.precision == precision
        emb = m.embed_audio(lite_waves)
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
        assert (emb * ref).sum(1).min() >= min_cos, precision


def test_int8_quantises_feed_forward_layers_and_spares_attention(tiny_dir):
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    from paraspeechclap import load_model

    m = load_model(str(tiny_dir), precision="int8")
    layer = m.audio_branch.base.encoder.layers[0]
    assert isinstance(layer.feed_forward.intermediate_dense, QLinear)
    assert isinstance(layer.attention.q_proj, torch.nn.Linear) and not isinstance(layer.attention.q_proj, QLinear)
    assert np.isfinite(m.embed_audio([tone(1.0, 150)])).all()


@pytest.mark.precision
@pytest.mark.parametrize("precision", ["auto", "bf16"])
def test_shipped_model_batch_invariance_in_each_precision(lite_waves, precision):
    """``auto`` runs in whatever this run resolves it to (the suite runs twice, see README);
    bf16 is also asked for explicitly, so batch invariance in bf16 is tested on every machine."""
    from paraspeechclap import load_model

    m = load_model(precision=precision)
    alone = np.stack([m.embed_audio([w])[0] for w in lite_waves])
    atol = BATCH_ATOL[m.precision]
    np.testing.assert_allclose(m.embed_audio(lite_waves, batch_size=len(lite_waves)), alone, atol=atol)
    np.testing.assert_allclose(m.embed_audio(lite_waves[::-1], batch_size=3)[::-1], alone, atol=atol)


def test_score_and_classify_agree_with_embeddings(tiny, wav_files):
    caps = ["a deep voice", "a high voice"]
    s = tiny.score(wav_files, caps)
    np.testing.assert_allclose(s, tiny.embed_audio(wav_files) @ tiny.embed_text(caps).T, atol=1e-6)
    ranked = tiny.classify(wav_files, ["deep", "high-pitched", "calm"])
    cls = tiny.class_embeddings(["deep", "high-pitched", "calm"])
    sims = tiny.embed_audio(wav_files) @ cls.T
    for r, row in zip(ranked, sims):
        assert [lab for lab, _ in r] == [["deep", "high-pitched", "calm"][j] for j in np.argsort(-row)]
        assert r[0][1] == pytest.approx(row.max(), abs=1e-6)


def test_prompt_ensemble_is_renormalised_mean_of_template_embeddings(tiny):
    temps = ["A person is speaking in a {} style.", "The voice sounds {}.", "{} speech"]
    cls = tiny.class_embeddings(["angry", "calm"], templates=temps)
    for i, c in enumerate(["angry", "calm"]):
        e = tiny.embed_text([t.format(c) for t in temps]).mean(0)
        np.testing.assert_allclose(cls[i], e / np.linalg.norm(e), atol=1e-6)


def test_save_and_reload_round_trip(tiny, tiny_dir, wav_files):
    from paraspeechclap import load_model

    m = load_model(str(tiny_dir), precision="fp32")
    np.testing.assert_array_equal(m.embed_audio(wav_files), tiny.embed_audio(wav_files))
    assert m.checksum and m.model_id == "tiny"


@pytest.mark.precision
def test_auto_precision_follows_the_hardware(tiny_dir, monkeypatch):
    import paraspeechclap.inference as inf
    from paraspeechclap import load_model

    monkeypatch.delenv(inf.AUTO_PRECISION_ENV, raising=False)
    flags = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f {}\n"
    assert _real_cpu_has_bf16(flags.format("avx512_bf16")) and _real_cpu_has_bf16(flags.format("amx_bf16"))
    assert not _real_cpu_has_bf16(flags.format("")) and not _real_cpu_has_bf16("")
    assert inf.resolve_precision("int8", "cpu") == "int8"  # explicit choices are kept
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(inf, "cpu_has_bf16", lambda native=native: native)
        assert inf.resolve_precision("auto", "cpu") == expected
        m = load_model(str(tiny_dir))  # the default is auto
        assert m.precision == expected
        assert next(m.parameters()).dtype == (torch.bfloat16 if native else torch.float32)


@pytest.mark.precision
def test_environment_variable_overrides_auto_and_reaches_subprocesses(tiny_dir, monkeypatch):
    import subprocess
    import sys

    import paraspeechclap.inference as inf
    from paraspeechclap.errors import InputError

    for native in (True, False):
        monkeypatch.setattr(inf, "cpu_has_bf16", lambda native=native: native)
        for forced in ("bf16", "fp32"):
            monkeypatch.setenv(inf.AUTO_PRECISION_ENV, forced)
            assert inf.resolve_precision("auto", "cpu") == forced
            assert inf.resolve_precision("int8", "cpu") == "int8"  # only auto is overridden
    monkeypatch.setenv(inf.AUTO_PRECISION_ENV, "fp16")
    with pytest.raises(InputError, match=inf.AUTO_PRECISION_ENV):
        inf.resolve_precision("auto", "cpu")
    code = "from paraspeechclap import load_model; import sys; print(load_model(sys.argv[1]).precision)"
    for forced in ("bf16", "fp32"):
        monkeypatch.setenv(inf.AUTO_PRECISION_ENV, forced)
        out = subprocess.run([sys.executable, "-c", code, str(tiny_dir)], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == forced


def _pooled_over_concatenated_frames(enc, wav):
    """Reference for a long clip: encode each window alone, concatenate every layer's valid frames
    over the windows, pool those (seam pairs of the change statistics excluded, as two windows are
    encoded apart), then add the extras measured on the whole clip."""
    from paraspeechclap.encoders.whisper import DELTA_LAGS

    per_layer: list[list[torch.Tensor]] = [[] for _ in enc.layers]
    deltas: list[list[torch.Tensor]] = [[] for _ in enc.layers]
    for w in split_windows(wav, enc.window_samples):
        p = enc.prepare(w)
        states, (mask, *_) = enc.hidden_states(p.features[None], torch.tensor([p.length]))
        n = int(mask.sum())
        for i, h in enumerate(states):
            frames = h[0, :n].double()
            per_layer[i].append(frames)
            deltas[i].append([(frames[lag:] - frames[:-lag]) ** 2 for lag in DELTA_LAGS])
    pooled = []
    for i in range(len(enc.layers)):
        frames = torch.cat(per_layer[i])
        mean = frames.mean(0)
        stats = [mean, (((frames - mean) ** 2).mean(0) + 1e-6).sqrt()][: 1 if enc.pooling == "mean" else 2]
        if enc.pooling == "mean_std_delta":
            stats += [(torch.cat([d[k] for d in deltas[i]]).mean(0) + 1e-6).sqrt() for k in range(len(DELTA_LAGS))]
        pooled.append(torch.cat(stats))
    extras = {k: v[None] for k, v in enc.clip_extras(wav).items()}
    return enc._with_extras(torch.cat(pooled)[None].float(), extras.get("level_dbfs"), extras.get("pitch"))


def test_long_clip_pools_the_concatenated_frames_of_its_windows_exactly():
    """A 70 s clip (three windows) on the shipped model: mean and standard deviation over all
    frames, F0 and level over the whole clip, exactly as if the windows' frames were one sequence."""
    from paraspeechclap import load_model

    model = load_model(precision="fp32")
    enc = model.audio_branch
    rng = np.random.default_rng(7)
    wav = np.concatenate([tone(5.0, f0, seed=i) * g for i, (f0, g) in
                          enumerate(zip(rng.uniform(90, 260, 14), rng.uniform(0.2, 1.0, 14)))]).astype(np.float32)
    assert len(split_windows(wav, enc.window_samples)) == 3
    emb = model.embed_audio([wav, wav[:16000 * 4]])  # a short clip beside it takes the one-window path
    with torch.no_grad():
        ref = _project(model, enc.forward_head(_pooled_over_concatenated_frames(enc, wav)))
        old = _project(model, model._pool_windows([split_windows(wav, enc.window_samples)], 16).float())
    np.testing.assert_allclose(emb[:1], ref, atol=1e-5)
    np.testing.assert_allclose(emb[1:], model.embed_audio([wav[:16000 * 4]]), atol=1e-6)
    # the trainer's cached evaluation features of a long dev clip are the same numbers
    from paraspeechclap.training.features import full_clip_features

    with torch.no_grad():
        cached = _project(model, enc.forward_head(full_clip_features(wav, enc, batch_size=2)[None]))
    np.testing.assert_allclose(cached, ref, atol=1e-5)
    # what the windows gave before (frame-weighted mean of their outputs) is measurably different
    assert np.abs(old - ref).max() > 1e-3


def _project(model, pooled):
    return torch.nn.functional.normalize(model.project_audio(pooled, normalize=False), dim=-1).numpy()


@pytest.mark.parametrize("pooling", ["mean_std_delta", "mean"])
def test_window_moments_match_the_reference_for_every_pooling(pooling):
    from paraspeechclap.encoders.whisper import create_whisper_encoder

    enc = create_whisper_encoder("tiny.en", layers=[1, 3], pooling=pooling, combine="concat", standardize=True,
                                 pitch_input=True).eval()
    enc.window_samples = 16000 * 3  # short windows keep the test fast; the arithmetic is the same
    wav = np.concatenate([tone(2.0, 120), tone(2.5, 210, seed=1), tone(3.0, 160, seed=2)])
    pieces = split_windows(wav, enc.window_samples)
    assert len(pieces) == 3
    with torch.no_grad():
        prepared = [enc.prepare(w) for w in pieces]
        from paraspeechclap.inference import collate_prepared

        batch = collate_prepared(prepared)  # padded: the moments must ignore the padding
        moments = enc.window_moments(batch["features"], batch["lengths"]).sum(0, keepdim=True)
        extras = {k: v[None] for k, v in enc.clip_extras(wav).items()}
        got = enc.frozen_from_moments(moments, **extras)
        ref = _pooled_over_concatenated_frames(enc, wav)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
