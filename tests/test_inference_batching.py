"""Batching policy of audio inference: the padded-length budget per batch, and the reuse of freed
memory inside a HF audio forward pass (see ``benchmarks/inference.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paraspeechclap.encoders import base
from paraspeechclap.encoders.base import PreparedAudio, reuse_freed_memory
from paraspeechclap.inference import _batches, _Window
from paraspeechclap.testing import tone


def _windows(lengths: list[int]) -> list[_Window]:
    return [_Window(i, 1.0, PreparedAudio(torch.zeros(n))) for i, n in enumerate(lengths)]


def _check(batches: list[list[_Window]], n: int, batch_size: int, budget: int | None, mode: str) -> None:
    seen = sorted(w.item for b in batches for w in b)
    assert seen == list(range(n))  # every window exactly once
    for b in batches:
        lengths = [w.prepared.length for w in b]
        assert 1 <= len(b) <= batch_size
        assert lengths == sorted(lengths, reverse=True)
        if budget is not None and len(b) > 1:
            assert len(b) * max(lengths) <= budget
        if mode == "equal_length":
            assert len(set(lengths)) == 1


@pytest.mark.parametrize("mode", ["mask", "equal_length"])
@pytest.mark.parametrize("budget", [None, 1, 500, 1000, 2500, 10**9])
@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_batches_respect_the_size_and_the_padded_length_budget(mode, budget, batch_size):
    rng = np.random.default_rng(batch_size + (budget or 0) % 97)
    lengths = [int(x) for x in rng.choice([100, 250, 250, 400, 600, 1200], size=40)]
    batches = list(_batches(_windows(lengths), batch_size, mode, budget))
    _check(batches, len(lengths), batch_size, budget, mode)
    if budget is None or budget >= 10**9:  # no budget: exactly the batches of the size limit alone
        assert [[w.item for w in b] for b in batches] == [[w.item for w in b] for b in
                                                          _batches(_windows(lengths), batch_size, mode)]


def test_batches_are_filled_greedily_and_long_windows_go_alone():
    lengths = [300, 100, 100, 100, 100, 1000, 200]
    got = [[w.prepared.length for w in b] for b in _batches(_windows(lengths), 16, "mask", 600)]
    # 1000 > budget: alone; 300 + 200 (2 x 300 = 600 fits, 3 x 300 does not); then 4 x 100 (6 x 100 would fit)
    assert got == [[1000], [300, 200], [100, 100, 100, 100]]


def test_hf_audio_encoders_cap_batches_at_20_seconds(tiny):
    from paraspeechclap.encoders.hf_audio import MAX_BATCH_SECONDS

    assert tiny.audio_branch.max_batch_positions == MAX_BATCH_SECONDS * 16000 == 320_000
    lengths = [16000 * 5] * 9 + [16000 * 30] * 2 + [16000 * 10] * 3
    sizes = [len(b) for b in _batches(_windows(lengths), 16, "mask", tiny.audio_branch.max_batch_positions)]
    assert sizes == [1, 1, 2, 2, 4, 4]  # 30 s alone, 10 s in twos (the third with a 5 s clip), 5 s in fours


def test_budgeted_batches_give_the_one_at_a_time_embeddings(tiny, monkeypatch):
    enc = tiny.audio_branch
    wavs = [tone(s, 100 + 40 * i, seed=i) for i, s in enumerate([1.3, 0.4, 2.2, 0.9, 1.0, 0.6, 1.7])]
    alone = np.stack([tiny.embed_audio([w], batch_size=1)[0] for w in wavs])
    sizes: list[tuple[int, int]] = []
    forward = type(enc).forward

    def spy(self, features, lengths, **extras):
        sizes.append((features.shape[0], features.shape[-1]))
        return forward(self, features, lengths, **extras)

    monkeypatch.setattr(type(enc), "forward", spy)
    budget = 40_000  # 2.5 s of padded audio per batch
    monkeypatch.setattr(enc, "max_batch_positions", budget)
    batched = tiny.embed_audio(wavs, batch_size=16)
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    assert sum(b for b, _ in sizes) == len(wavs) and len(sizes) > 1
    assert all(b == 1 or b * t <= budget for b, t in sizes)
    # the budget also applies to the windows of long audio
    sizes.clear()
    monkeypatch.setattr(enc, "window_samples", 16000)
    long = tone(4.5, 150)  # 5 windows of 14400 samples: two per batch under the budget
    np.testing.assert_allclose(tiny.embed_audio([long], batch_size=16),
                               tiny.embed_audio([long], batch_size=1), atol=1e-5)
    assert [b for b, _ in sizes] == [2, 2, 1] + [1] * 5


class _FakeMallopt:
    def __init__(self):
        self.calls: list[tuple[int, int]] = []

    def __call__(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return 1


def test_reuse_freed_memory_sets_and_restores_the_glibc_thresholds(monkeypatch):
    fake = _FakeMallopt()
    monkeypatch.setitem(base._glibc_functions, "mallopt", fake)
    monkeypatch.delenv(base.REUSE_MEMORY_ENV, raising=False)
    keep = [(base._M_MMAP_THRESHOLD, base._KEEP), (base._M_TRIM_THRESHOLD, base._KEEP)]
    restore = [(base._M_MMAP_THRESHOLD, 32 << 20), (base._M_TRIM_THRESHOLD, 64 << 20)]
    with reuse_freed_memory():
        assert fake.calls == keep
        with reuse_freed_memory():  # reentrant: only the outermost block sets and restores
            pass
        assert fake.calls == keep
    assert fake.calls == keep + restore
    with pytest.raises(RuntimeError), reuse_freed_memory():  # restored on errors too
        raise RuntimeError
    assert fake.calls == 2 * (keep + restore) and base._malloc_depth == 0
    fake.calls.clear()
    monkeypatch.setenv(base.REUSE_MEMORY_ENV, "0")
    with reuse_freed_memory():
        pass
    assert fake.calls == []


def test_reuse_freed_memory_is_a_no_op_without_glibc(monkeypatch):
    monkeypatch.setitem(base._glibc_functions, "mallopt", False)
    with reuse_freed_memory():
        x = torch.ones(3)
    assert float(x.sum()) == 3


def test_glibc_is_found_where_there_is_one():
    import os

    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        glibc = False
    assert bool(base._glibc_mallopt()) == glibc


def test_hf_audio_forward_reuses_memory_at_inference_only(tiny, monkeypatch):
    fake = _FakeMallopt()
    monkeypatch.setitem(base._glibc_functions, "mallopt", fake)
    monkeypatch.delenv(base.REUSE_MEMORY_ENV, raising=False)
    enc = tiny.audio_branch
    p = enc.prepare(tone(0.5, 200))
    feats, lengths = p.features[None], torch.tensor([p.length])
    with torch.no_grad():
        out = enc(feats, lengths)
    assert len(fake.calls) == 4  # set on entry, restored on exit
    fake.calls.clear()
    with torch.enable_grad():
        out_grad = enc(feats, lengths)
    assert fake.calls == []  # training keeps glibc's behaviour
    torch.testing.assert_close(out, out_grad.detach(), atol=1e-6, rtol=0)


def test_results_do_not_depend_on_reusing_memory(tiny, monkeypatch):
    wavs = [tone(s, 120 + 50 * i, seed=i) for i, s in enumerate([1.1, 0.7, 1.9])]
    monkeypatch.setenv(base.REUSE_MEMORY_ENV, "0")
    plain = tiny.embed_audio(wavs, batch_size=3)
    monkeypatch.delenv(base.REUSE_MEMORY_ENV)
    np.testing.assert_allclose(tiny.embed_audio(wavs, batch_size=3), plain, atol=1e-6)


def test_projecting_pooled_features_gives_the_embeddings(tiny, monkeypatch):
    # benchmarks pool clips once (pool_audio) and project them (embed_pooled) instead of embedding them again:
    # the two paths must agree, for short clips and for a clip cut into windows
    monkeypatch.setattr(tiny.audio_branch, "window_samples", 16000)
    wavs = [tone(s, 120 + 30 * i, seed=i) for i, s in enumerate([0.7, 1.4, 3.5])]
    np.testing.assert_allclose(tiny.embed_pooled(tiny.pool_audio(wavs, batch_size=2)),
                               tiny.embed_audio(wavs, batch_size=2), atol=1e-5)
